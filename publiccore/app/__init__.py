"""The composition root: the command line and the services that wire stages together.

Nothing in the spine or in a stage imports this package; it may import all of them.
"""
