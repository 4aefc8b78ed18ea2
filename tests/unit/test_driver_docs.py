"""The documented contracts match the code: the exit-code table lists every error class
with its exit code, and every title workflows/README.md documents is in a template."""

import re

from driver import images, lock  # noqa: F401 - their SourceRejected, FolderLocked join ERROR_CLASSES (the test failed when run alone)
from driver.enhance import errors as enhance_errors  # noqa: F401 - its classes join ERROR_CLASSES
from driver.errors import ERROR_CLASSES
from driver.farm import errors as farm_errors  # noqa: F401 - its classes join ERROR_CLASSES
from driver.render.workflow import TemplateError, load_template, title_of
from driver.story.storyboard import REPO_ROOT


def test_exit_code_table_matches_the_error_classes():
    text = (REPO_ROOT / "README.md").read_text()
    table = text.split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    documented = {}
    for row in table.splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for code in re.findall(r"`([a-z_]+)`", cells[1]):
            documented[code] = int(cells[0])
    actual = {code: cls.exit_code for code, cls in ERROR_CLASSES.items()}
    actual[TemplateError.code] = TemplateError.exit_code
    assert documented == actual


def test_documented_titles_exist_in_the_templates():
    text = (REPO_ROOT / "workflows" / "README.md").read_text()
    paths = (REPO_ROOT / "workflows").glob("*.api.json")
    templates = {p.name.removesuffix(".api.json"): load_template(p) for p in paths}
    rows = [r for r in text.split("## Titles the driver binds", 1)[1].split("\n\n")[1].splitlines()[2:]]
    assert len(rows) > 30
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        pattern = cells[0].strip("`").replace("*", ".*")
        names = [n for n in templates if re.fullmatch(pattern, n)]
        assert names, row
        for title in re.findall(r"`([^`]+)`", cells[1]):
            assert all(any(title_of(n) == title for n in templates[name].values()) for name in names), (title, names)
