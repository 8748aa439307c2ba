"""What `run` and `check-config` read from disk before anything starts, and how a start-up
failure is told: one line naming the setting to change."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from sales.business import BusinessConfig, load_business
from sales.errors import ConfigProblem
from sales.failpoints import Failpoints
from sales.settings import Settings


def suite_version() -> str:
    try:
        return version("ia-comercial")
    except PackageNotFoundError:
        return "0+unknown"


def load_rules(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigProblem([(str(path), "(file)", "not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigProblem([(str(path), "(file)", f"cannot be read: {_why(exc)}")]) from None


def _why(exc: OSError | UnicodeDecodeError) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror  # the path is told beside it
    return str(exc)


def startup_problem(setting: str, path: Path, exc: BaseException) -> ConfigProblem:
    """A start-up failure as one line: the setting to change, its value, and why."""
    if isinstance(exc, FileExistsError):  # from mkdir: something else has the folder's name
        why = f"{exc.filename} exists and is not a folder"
    elif isinstance(exc, OSError) and exc.strerror:
        why = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        why = str(exc)
    return ConfigProblem([(setting, str(path), why)])


def _setting_to_change(setting: str, problem: ConfigProblem) -> list[tuple[str, str, str]]:
    """A config file that is missing or unreadable is told as the setting that names it."""
    told = []
    for file, where, reason in problem.problems:
        if where == "(file)":
            relative = "" if Path(file).is_absolute() else f" (relative to {Path.cwd()})"
            told.append((setting, file, f"{reason}{relative}; change {setting}"))
        else:
            told.append((file, where, reason))
    return told


def check_config(settings: Settings) -> tuple[BusinessConfig, str]:
    """Everything `run` needs from disk, validated; raises `ConfigProblem` listing it all."""
    problems: list[tuple[str, str, str]] = []
    business: BusinessConfig | None = None
    rules = ""
    try:
        business = load_business(settings.business_config)
    except ConfigProblem as exc:
        problems += _setting_to_change("BUSINESS_CONFIG", exc)
    try:
        rules = load_rules(settings.system_prompt_path)
    except ConfigProblem as exc:
        problems += _setting_to_change("SYSTEM_PROMPT_PATH", exc)
    try:
        Failpoints(settings.failpoints)
    except ConfigProblem as exc:
        problems += exc.problems
    if problems or business is None:
        raise ConfigProblem(problems)
    return business, rules
