"""handgrad.data"""
