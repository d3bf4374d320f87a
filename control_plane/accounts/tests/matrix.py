"""The ONE table of who may do what, read by the API and admin permission-matrix tests.

Rows are roles; columns are where the object lives and which kind it is:
    domain        apps, keys, LLMs, tools, datasources, budgets, namespace roles (granting a role in N is
                  writing an object of N: its administrators grant, its operators and viewers do not)
    ops           plugins, schedules, edges (what an operator runs)
    global        global-only models (users, prices)
Cells list the operations allowed: l(ist) v(iew) c(reate) u(pdate) d(elete); "-" = none.
"""

from __future__ import annotations

TABLE = """
role            A:domain  A:ops  B:domain  B:ops  "":domain  "":ops  global
superuser       lvcud     lvcud  lvcud     lvcud  lvcud      lvcud   lvcud
admin-A         lvcud     lvcud  -         -      lv         lv      lv
operator-A      lv        lvcud  -         -      lv         lv      lv
viewer-A        lv        lv     -         -      lv         lv      lv
admin-global    -         -      -         -      lvcud      lvcud   lvcud
staff-no-role   -         -      -         -      -          -       -
"""

A, B = "team-a", "team-b"  # the namespaces the table calls A and B
COLUMN = {A: "A", B: "B", "": '""'}

#: The role rows a test user gets: (is_superuser, {namespace: role}).
ROLE_GRANTS: dict[str, tuple[bool, dict[str, str]]] = {
    "superuser": (True, {}),
    "admin-A": (False, {A: "admin"}),
    "operator-A": (False, {A: "operator"}),
    "viewer-A": (False, {A: "viewer"}),
    "admin-global": (False, {"": "admin"}),
    "staff-no-role": (False, {}),
}

KIND_CLASS = {
    "app": "domain",
    "key": "domain",
    "llm": "domain",
    "tool": "domain",
    "datasource": "domain",
    "budget": "domain",
    "role": "domain",
    "plugin": "ops",
    "schedule": "ops",
    "edge": "ops",
    "user": "global",
    "price": "global",
}
NAMESPACED_TARGETS = (A, B, "")
OPERATIONS = ("list", "view", "create", "update", "delete")


def _parse() -> dict[str, dict[str, str]]:
    lines = [line.split() for line in TABLE.strip().splitlines()]
    header = lines[0][1:]
    return {row[0]: dict(zip(header, (cell.replace("-", "") for cell in row[1:]), strict=True)) for row in lines[1:]}


RIGHTS = _parse()


def expected(role: str, kind: str, namespace: str, operation: str) -> bool:
    """Whether `role` may do `operation` on a `kind` object living in `namespace` (ignored for global kinds)."""
    klass = KIND_CLASS[kind]
    column = "global" if klass == "global" else f"{COLUMN[namespace]}:{klass}"
    return operation[0] in RIGHTS[role][column]


def cases(kinds=tuple(KIND_CLASS)) -> list[tuple[str, str, str]]:
    """Every (kind, namespace, operation) to check: global-only kinds once, the others in A, B and ""."""
    out = []
    for kind in kinds:
        targets = ("",) if KIND_CLASS[kind] == "global" else NAMESPACED_TARGETS
        out += [(kind, ns, op) for ns in targets for op in OPERATIONS]
    return out
