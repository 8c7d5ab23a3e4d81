"""albedogan.eval"""
