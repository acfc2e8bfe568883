"""handgrad.ops"""
