"""handgrad.optim"""
