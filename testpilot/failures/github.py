"""A small GitHub Issues REST client: find Testpilot's issues by their hidden marker, open, comment, reopen.

Existing issues are found by listing the repository's issues labelled ``testpilot`` (newest activity first)
rather than through the search API, whose index lags behind by minutes and would let a cluster that recurs
soon after its first run open a second issue.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import requests

from testpilot.errors import InfrastructureError

LABEL = "testpilot"


class GitHubIssuesClient:
    """Issues of one repository. ``api_url`` is https://api.github.com, or https://HOST/api/v3 on Enterprise."""

    def __init__(self, repository: str, token: str, *, api_url: str = "https://api.github.com",
                 timeout: float = 10.0, max_pages: int = 10, session: requests.Session | None = None) -> None:
        self.repository, self.api_url = repository, api_url.rstrip("/")
        self.timeout, self.max_pages = timeout, max_pages
        self._host = urlsplit(self.api_url).netloc
        self._session = session or requests.Session()
        self._session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                                      "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "testpilot"})

    def _call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        what = f"GitHub {method} {urlsplit(url).path}"
        try:
            response = self._session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise InfrastructureError(f"{what} failed: {type(exc).__name__}", host=self._host,
                                      hint="check failures.issues' block api_url and the network") from None
        if response.status_code >= 400:
            try:
                data = response.json()
                message = str(data.get("message", "")) if isinstance(data, dict) else ""
            except ValueError:
                message = response.text[:200]
            hint = {401: "the block's token is invalid or expired",
                    403: f"the token needs Issues: write on {self.repository} (or it hit a rate limit)",
                    404: f"check the repository name {self.repository!r} and that the token can see it",
                    410: f"issues are disabled on {self.repository}"}.get(response.status_code, "")
            raise InfrastructureError(f"{what} answered {response.status_code} {message}".rstrip(),
                                      host=self._host, hint=hint)
        return response

    def _repo(self, path: str = "") -> str:
        return f"{self.api_url}/repos/{self.repository}/issues{path}"

    def issues_by_marker(self, markers: Iterable[str]) -> dict[str, dict[str, Any]]:
        """marker -> the most recently updated issue (open or closed) whose body holds it."""
        wanted, found = set(markers), dict[str, dict[str, Any]]()
        url: str | None = self._repo()
        params: dict[str, Any] | None = {"labels": LABEL, "state": "all", "sort": "updated", "direction": "desc",
                                         "per_page": 100}
        for _ in range(self.max_pages):
            if url is None or not wanted - found.keys():
                break
            response = self._call("GET", url, params=params)
            for issue in response.json():
                body = issue.get("body") or ""
                if "pull_request" in issue:
                    continue
                for marker in wanted - found.keys():
                    if marker in body:
                        found[marker] = issue
            url, params = response.links.get("next", {}).get("url"), None  # the next link carries the query
        return found

    def create_issue(self, title: str, body: str, labels: list[str]) -> dict[str, Any]:
        return dict(self._call("POST", self._repo(), json={"title": title, "body": body, "labels": labels}).json())

    def comment(self, number: int, body: str) -> dict[str, Any]:
        return dict(self._call("POST", self._repo(f"/{number}/comments"), json={"body": body}).json())

    def reopen(self, number: int) -> dict[str, Any]:
        return dict(self._call("PATCH", self._repo(f"/{number}"), json={"state": "open"}).json())
