"""HTTP(S) downloads that never step down from https to http on a redirect.

urllib follows any redirect it is given; a key or a repository index asked for over https
must not be fetched over plain http because a server (or whoever sits in the path of a
mirror's redirect) says so. apt refuses such a redirect on its own; gpuwizard's own
downloads (the signing key, the repository probe) refuse it here.

A URL urllib cannot open (a port that is not a number, `user:pass/word@host`) is a URLError
here, never http.client's InvalidURL: its text would quote the URL's host part, which may
hold a password. Callers catch FAILURES, which also covers a body cut short while read.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from typing import IO, Any, Optional


class DowngradeRefused(urllib.error.URLError):
    """A redirect from https to a non-https URL."""


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, req: Any, fp: IO[bytes], code: int, msg: str, headers: Any, newurl: str
    ) -> Optional[urllib.request.Request]:
        old = urllib.parse.urlparse(req.full_url).scheme
        new = urllib.parse.urlparse(urllib.parse.urljoin(req.full_url, newurl)).scheme
        if old == "https" and new != "https":
            raise DowngradeRefused(
                f"refused a redirect from https to {new}: {newurl} (the download must stay "
                "encrypted)"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class UnusableURL(urllib.error.URLError):
    """A URL urllib refused before connecting (its text is not the URL's)."""


_OPENER = urllib.request.build_opener(_NoDowngrade)
# what a download can fail with: the network, the server, a response cut short
FAILURES = (urllib.error.URLError, OSError, http.client.HTTPException)


def urlopen(req: urllib.request.Request, timeout: float) -> Any:
    """urllib's urlopen, minus redirects from https to http; a URL it cannot open is an
    UnusableURL (a URLError) that does not quote the URL."""
    try:
        return _OPENER.open(req, timeout=timeout)
    except urllib.error.URLError:
        raise
    except http.client.InvalidURL:
        raise UnusableURL(
            "not a usable URL: its host[:port] is not valid (a port that is not a number, or "
            "a login in the URL)"
        ) from None
    except ValueError:
        raise UnusableURL("not a usable URL (urllib cannot open it)") from None
