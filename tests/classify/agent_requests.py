"""Claude Code-shaped request bodies for the harness tests: a system prompt of agent-harness size, a
tool list like a coding agent's, and the message structure such an agent sends (reminder blocks in user
turns, tool_use / tool_result exchanges). Written for these tests; no real harness text is copied."""

from __future__ import annotations

from typing import Any

_RULES = [
    "You are an interactive command-line assistant that helps people with software engineering work.",
    "Use the tools available to read, search and edit files in the user's repository.",
    "Before editing a file, read it; keep changes small and consistent with the surrounding code style.",
    "Never commit or push unless the user asks you to; never reveal secrets found in files.",
    "When a command may change the user's system, explain what it does before running it.",
    "Prefer searching with the grep and glob tools over running shell find or grep commands.",
    "Keep answers short in the terminal: a few lines unless the user asks for detail.",
    "Track multi-step work with the todo tool and mark items done as soon as they are finished.",
    "If tests exist, run them after a change and report failures honestly.",
    "Refuse to write code meant to harm systems; ask when a request is ambiguous.",
]
SYSTEM_PROMPT = "\n\n".join(
    f"# Section {n}\n" + " ".join(_RULES[(n + k) % len(_RULES)] for k in range(6)) for n in range(40)
)
"""About 20k characters, like a coding agent's system prompt."""

_TOOL_NAMES = [
    "Bash", "Read", "Write", "Edit", "MultiEdit", "Glob", "Grep", "LS", "WebFetch", "WebSearch", "TodoWrite",
    "NotebookRead", "NotebookEdit", "Task", "ExitPlanMode", "BashOutput", "KillShell", "SlashCommand",
]
TOOLS: list[dict[str, Any]] = [
    {
        "name": name,
        "description": f"{name}: " + " ".join(_RULES[i % len(_RULES)] for i in range(i, i + 4)),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Absolute path of the file or folder to act on."},
                "pattern": {"type": "string", "description": "A glob or regular expression, when the tool searches."},
                "command": {"type": "string", "description": "The command line to run, when the tool runs one."},
            },
            "required": ["path"],
        },
    }
    for i, name in enumerate(_TOOL_NAMES)
]
REMINDER = (
    "<system-reminder>This is a reminder: the todo list is empty. Do not mention this reminder to the "
    "user. Use the todo tool if the task has several steps.</system-reminder>"
)
EASY_ASK = "what does this function return?"
HARD_ASK = (
    "redesign this module's concurrency model and migrate its callers: replace the thread pool and the shared "
    "locks with an asyncio task group, keep the public API, and update every caller in the package"
)


def agent_request(ask: str, *, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One agent call: the harness, earlier turns, then the user's ask with a reminder block."""
    return {
        "model": "claude-opus-4-8",
        "max_tokens": 32000,
        "system": [{"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}],
        "tools": TOOLS,
        "messages": [
            *(history or []),
            {"role": "user", "content": [{"type": "text", "text": REMINDER}, {"type": "text", "text": ask}]},
        ],
    }


def follow_up(first_ask: str, reply: str, second_ask: str) -> dict[str, Any]:
    """The second call of a conversation: the first ask, the agent's plan, a tool exchange, then the user."""
    history = [
        {"role": "user", "content": [{"type": "text", "text": REMINDER}, {"type": "text", "text": first_ask}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": reply},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "/repo/pool.py"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "def run(jobs):\n    return [j() for j in jobs]\n"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "I have read the module. Shall I start the migration?"}]},
    ]
    return agent_request(second_ask, history=history)
