"""I2C sensor drivers over an SMBus-like bus (smbus2 on hardware, FakeSMBus in tests)."""
