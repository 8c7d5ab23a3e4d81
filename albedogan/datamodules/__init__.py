"""albedogan.datamodules"""
