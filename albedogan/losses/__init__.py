"""albedogan.losses"""
