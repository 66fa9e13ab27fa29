"""The competitions as plug-ins of the one pipeline.

``aslkit.tasks.registry`` maps a competition's slug to its plug-in (``aslkit.tasks.<task>.plugin.PLUGIN``, a
``TaskPlugin``); the stage modules (``aslkit.prepare``, ``train``, ``evaluate``, ``export``, ``submit``) ask the
registry and never name a competition. ``aslkit.tasks.base`` is the contract every plug-in fulfils.
"""
