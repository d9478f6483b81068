"""A faithful fake of NEAR AI Cloud, the upstream privchat proxies to.

Usage in tests::

    fake = FakeCloud(api_key="sk-test")
    base_url = await nursery.start(serve_fake_cloud, fake)   # "http://127.0.0.1:PORT/v1"

Knobs live on ``fake.knobs`` (see :mod:`.knobs` for the ``x-fake-*`` headers and the
``/_fake/config`` control route); recordings on ``fake.requests`` and ``fake.streams``.
"""

from .echo import ECHO_MODEL
from .knobs import KnobError, Knobs
from .server import serve_fake_cloud
from .state import FakeCloud, RecordedRequest, StreamRecord

__all__ = [
    "ECHO_MODEL",
    "FakeCloud",
    "KnobError",
    "Knobs",
    "RecordedRequest",
    "StreamRecord",
    "serve_fake_cloud",
]
