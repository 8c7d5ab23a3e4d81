"""albedogan.models"""
