"""Event formats: every delivery format an action receives, parsed into one ``Event``.

What the deployed actions need and nothing more (no runtime, no storage):
:mod:`.formats` (``parse_event``, the local and OpenWhisk formats), :mod:`.cloud_events`
(Code Engine and S3 deliveries), :mod:`.fields` (the field readers they share).
"""
