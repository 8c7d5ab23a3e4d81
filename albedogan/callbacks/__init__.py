"""albedogan.callbacks"""
