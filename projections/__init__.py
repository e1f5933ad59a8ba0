"""The read side: one module per read model, its tables beside its handlers.

Ships as ``programledger.projections`` (``src/programledger/projections`` links here).
"""
