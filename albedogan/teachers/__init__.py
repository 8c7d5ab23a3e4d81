"""albedogan.teachers"""
