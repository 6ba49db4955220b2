"""`mmr admin ...` as an operator runs it, against a running mmr: answers as text or `--json`,
long operations followed to the end, non-zero exits on refusals and failures."""

from __future__ import annotations

import asyncio
import json
import subprocess

from tests.conftest import SERVER_NAME, TEST_SECRET
from tests.infra.processes import run_mmr
from tests.services.admin.conftest import Callers, Deployment


async def mmr_admin(deployment: Deployment, *args: str, token: str = TEST_SECRET,
                    use_env: bool = False) -> subprocess.CompletedProcess[str]:
    if use_env:
        env = {"MMR_ADMIN_URL": deployment.admin_url, "MMR_ADMIN_TOKEN": token,
               "MMR_ADMIN_SERVER_NAME": SERVER_NAME}
        return await asyncio.to_thread(run_mmr, ["admin", *args], env)
    options = ["--url", deployment.admin_url, "--token", token, "--server-name", SERVER_NAME]
    return await asyncio.to_thread(run_mmr, ["admin", *options, *args])


async def test_purge_pin_and_usage_from_the_command_line(deploy: object, callers: Callers) -> None:
    deployment: Deployment = deploy("embedded")  # type: ignore[operator]
    kept = await deployment.upload(callers.alice.access_token, b"keep")
    gone = await deployment.upload(callers.alice.access_token, b"gone")
    pinned = await mmr_admin(deployment, "pin", f"mxc://{kept[0]}/{kept[1]}")
    assert pinned.returncode == 0, pinned.stderr
    assert "pinned" in pinned.stdout

    purged = await mmr_admin(deployment, "--json", "purge", "user", callers.alice.user_id,
                             use_env=True)
    assert purged.returncode == 0, purged.stderr
    result = json.loads(purged.stdout)
    assert result["affected"] == [f"mxc://{gone[0]}/{gone[1]}"]
    task = await mmr_admin(deployment, "--json", "task", str(result["task_id"]))
    assert json.loads(task.stdout)["is_finished"] is True

    usage = await mmr_admin(deployment, "--json", "usage", "localhost")
    assert json.loads(usage.stdout)["raw_counts"]["media"] == 1
    listed = await mmr_admin(deployment, "tasks")
    assert listed.returncode == 0 and "purge_media" in listed.stdout


async def test_refusals_and_bad_input_exit_non_zero(deploy: object, callers: Callers) -> None:
    deployment: Deployment = deploy("embedded")  # type: ignore[operator]
    refused = await mmr_admin(deployment, "purge", "remote", "--before-ts", "1",
                              token=callers.alice.access_token)
    assert refused.returncode == 1
    assert "403" in refused.stderr and "M_FORBIDDEN" in refused.stderr
    bad = await mmr_admin(deployment, "quarantine", "media", "not-an-mxc")
    assert bad.returncode == 1 and "not an mxc" in bad.stderr
    missing = await mmr_admin(deployment, "task", "424242")
    assert missing.returncode == 1 and "404" in missing.stderr
    no_token = await asyncio.to_thread(run_mmr, ["admin", "--url", deployment.admin_url, "tasks"])
    assert no_token.returncode == 1 and "token" in no_token.stderr
