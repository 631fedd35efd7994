"""The processes of a node: the front (``front.py``) and its workers (``worker.py``)."""
