"""AblationBench's own YAML prompt configurations, read from the user's checkout.

We ship none of the reference's prompt text; ``--planner-config`` / ``--judge-config`` point at
the YAML files of a checkout (``config/simple_lm/*.yaml``: ``prompts: {system, user}``), so the
exact reference prompts run. The user template is Jinja, rendered with the reference's variable
names (planner: ``paper_title``, ``problem_statement`` (the abstract), ``num_ablations``,
``paper_source``; judges: ``paper_title``, ``abstract``, ``side_A``/``side_B`` or
``problem_statement`` and ``official_reviews``, ``paper_source``). The system prompt is sent as
written. Templates run in Jinja's sandbox: a config file can fill in text, not run code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablationkit.errors import FormatError

MAX_CONFIG_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class PromptConfig:
    """A system prompt, a user template, and the sampling settings the config asks for."""

    system: str
    user_template: str
    temperature: float = 0.0
    top_p: float = 1.0
    source: str = ""

    def render_user(self, **variables: Any) -> str:
        """The user prompt, rendered as the reference renders it (a plain Jinja template)."""
        from jinja2 import TemplateError
        from jinja2.sandbox import SandboxedEnvironment

        try:
            return SandboxedEnvironment().from_string(self.user_template).render(**variables)
        except TemplateError as exc:
            raise FormatError(f"user prompt template: {exc}", where=self.source) from None

    def messages(self, **variables: Any) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.render_user(**variables)},
        ]


def packaged_prompts(package: str, stem: str) -> PromptConfig:
    """Our own prompt text in the reference's shape, shipped as ``<package>/prompts/<stem>``
    ``.system.txt`` (sent as written) and ``.user.j2`` (the template)."""
    from importlib import resources

    folder = resources.files(package).joinpath("prompts")
    return PromptConfig(
        system=folder.joinpath(f"{stem}.system.txt").read_text("utf-8").strip(),
        user_template=folder.joinpath(f"{stem}.user.j2").read_text("utf-8"),
        source=f"{package.replace('.', '/')}/prompts/{stem}",
    )


def load_prompt_config(path: str | Path) -> PromptConfig:
    """Read ``prompts.system`` and ``prompts.user`` (and ``model.temperature``/``top_p`` if set)."""
    import yaml

    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise FormatError(f"over {MAX_CONFIG_BYTES} bytes", where=path)
        data = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        raise FormatError(exc.strerror or "cannot be read", where=path) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FormatError(f"not a YAML file ({' '.join(str(exc).split())})", where=path) from None
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(prompts, dict) or not all(
        isinstance(prompts.get(key), str) for key in ("system", "user")
    ):
        raise FormatError("needs prompts.system and prompts.user (strings)", where=path)
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    return PromptConfig(
        system=prompts["system"],
        user_template=prompts["user"],
        temperature=float(model.get("temperature", 0.0)),
        top_p=float(model.get("top_p", 1.0)),
        source=str(path),
    )
