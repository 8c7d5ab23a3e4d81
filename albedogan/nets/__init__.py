"""albedogan.nets"""
