"""Lava processes used only by the tests to provoke failures.

They live in their own folder because Lava imports every .py beside a process's module to find its models.
"""
