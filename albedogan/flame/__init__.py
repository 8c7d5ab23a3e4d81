"""albedogan.flame"""
