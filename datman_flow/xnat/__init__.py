"""xnat"""
