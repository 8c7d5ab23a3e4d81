"""albedogan.assets"""
