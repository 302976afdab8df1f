"""The standalone backend (consume mode): the VMs of an Ephemera run take the calls.

``backend.py`` is the client side (puts jobs in storage, follows their results),
``server.py`` the VM side (run by every agent of the run: claims and runs batches),
``keys.py`` the storage layout they share, ``slots.py`` how a batch's claims and
result keep one result per call, ``presence.py`` which VMs are alive, and
``reclaim.py`` which calls of a dead VM another VM takes over, and ``wake.py`` how
the processes of one machine (local VMs, their client) wake each other up instead of
waiting for their next poll.
"""
