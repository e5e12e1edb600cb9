"""edgeinvestigate: find out why Cloudflare Queues + Workers jobs failed, and repair them.

>>> import edgeinvestigate as ei
>>> ev = ei.load(["tail.json", "logpush/20261127/"], since="2026-11-27T14:00Z")  # doctest: +SKIP
>>> clusters = ei.cluster(ev)                                                      # doctest: +SKIP
>>> findings = ei.analyze(ev)                                                      # doctest: +SKIP

Importing this package does nothing but define names: attributes are imported on first use,
no logging is configured, no network is touched and no configuration is read. The public names are
written once, in ``__init__.pyi``; ``__all__`` and the lazy attributes are derived from it.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
