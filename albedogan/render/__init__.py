"""albedogan.render"""
