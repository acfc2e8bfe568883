"""handgrad.models"""
