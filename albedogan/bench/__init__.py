"""albedogan.bench"""
