"""Where failure clusters become GitHub issues: the repository and a token that may write its issues."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from testpilot.failures.github import GitHubIssuesClient


class GitHubIssues(Block):
    """A repository's issues on GitHub or GitHub Enterprise; the token stays secret."""

    _block_type_name = "Testpilot GitHub Issues"
    repository: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="The repository as owner/name.")
    token: SecretStr = Field(description="Fine-grained token with Issues: read and write on the repository "
                                         "(or a classic token with the repo scope).")
    api_url: str = Field("https://api.github.com",
                         description="REST API root; GitHub Enterprise Server: https://HOST/api/v3.")
    timeout: float = Field(10.0, gt=0, description="Seconds per request.")
    max_pages: int = Field(10, ge=1, description="Pages of 100 issues searched for an existing cluster issue.")

    def get_client(self) -> GitHubIssuesClient:
        return GitHubIssuesClient(self.repository, self.token.get_secret_value(), api_url=self.api_url,
                                  timeout=self.timeout, max_pages=self.max_pages)
