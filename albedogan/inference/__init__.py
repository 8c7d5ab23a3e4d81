"""albedogan.inference"""
