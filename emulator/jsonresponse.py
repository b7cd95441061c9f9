"""The JSON responses of the emulator, safe for any string a client managed to send."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse


class SafeJSONResponse(JSONResponse):
    """A JSON response in ASCII: a lone surrogate pushed in an item (legal as a JSON escape) comes
    back escaped instead of failing the UTF-8 encoding of the answer."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
