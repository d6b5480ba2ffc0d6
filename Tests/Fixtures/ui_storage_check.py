#!/usr/bin/env python3
"""Checks the web UI's downloads and storage panels in headless Chromium.

    ui_storage_check.py BASE_URL ARTIFACTS_DIR JOB_JSON

JOB_JSON is a POST /jobs body for a slow download, started here as another app would. The
downloads panel must show it with a rate and the time left, pause it, resume it and cancel it
(after a confirm). The storage panel must show the store against the disk and each model; a
budget of 0 must list every installed model as what would go, and removing them (after a
confirm) must empty the store; the empty store then offers the demo model, which one click
installs. Screenshot storage.png goes to ARTIFACTS_DIR. Prints one JSON
line and exits 0, or names the step that failed and exits 1. Uses ui_check.py's browser set-up.
"""
import json
import sys
import urllib.request
from pathlib import Path


from ui_check import start_browser, severe_console, waiter

JOB = """
const r = document.querySelector('#jobs tr[data-job]');
return r ? { id: r.dataset.job, state: r.dataset.state, rate: r.querySelector('.rate').textContent,
             left: r.querySelector('.left').textContent, pct: r.querySelector('.pct').textContent } : null;
"""


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    base, artifacts, job = argv[1].rstrip("/"), Path(argv[2]), argv[3]
    request = urllib.request.Request(base + "/jobs", data=job.encode(), headers={"Content-Type": "application/json"}, method="POST")
    started = json.loads(urllib.request.urlopen(request, timeout=30).read())
    driver = start_browser()
    seen = {}

    wait, script = waiter(driver)

    def click(selector):
        # After the script returns: a click that opens a confirm must not block the script.
        wait(lambda d: script("const b = document.querySelector(arguments[0]);"
                              "if (b && !b.disabled && !b.hidden) { setTimeout(() => b.click(), 0); return true; } return false;",
                              selector), f"{selector} to click")

    def accept_confirm():
        wait(lambda d: d.switch_to.alert, "a confirm").accept()

    try:
        driver.get(base + "/")
        row = wait(lambda d: (lambda r: r if r and r["state"] == "running" and r["rate"].endswith("/s") and r["left"] != "—" else None)(script(JOB)),
                   "the download with a rate and the time left")
        assert row["id"] == started["id"], f"the job started outside the page: {row} {started}"
        seen["running"] = row
        click("#jobs button.pause")
        wait(lambda d: (script(JOB) or {}).get("state") == "paused", "the download paused")
        click("#jobs button.resume")
        wait(lambda d: (script(JOB) or {}).get("state") == "running", "the download running again")
        click("#jobs button.cancel")
        accept_confirm()
        wait(lambda d: script(JOB) is None, "the cancelled download gone")

        installed = wait(lambda d: script("return [...document.querySelectorAll('#storage-models tr[data-model]')].map(r => r.dataset.model);"),
                         "the storage panel's models")
        usage = wait(lambda d: (lambda t: t if "free:" in t else None)(script("return document.getElementById('usage-text').textContent;")),
                     "the store against the disk")
        seen["usage"] = usage
        driver.find_element("id", "prune-budget").send_keys("0")
        click("#prune-form button[type=submit]")
        planned = wait(lambda d: script("return [...document.querySelectorAll('#prune-removals li')].map(l => l.dataset.model);"),
                       "the prune plan")
        assert sorted(planned) == sorted(installed), f"a budget of 0 plans every model: {planned} against {installed}"
        click("#prune-confirm")
        accept_confirm()
        wait(lambda d: script("return document.getElementById('prune-summary').textContent.startsWith('Removed');"), "the models removed")
        wait(lambda d: script("return document.querySelectorAll('#storage-models tr[data-model]').length === 0;"), "an empty store")
        seen["removed"] = planned
        driver.save_screenshot(str(artifacts / "storage.png"))
        wait(lambda d: script("return !document.getElementById('installed-empty').hidden;"), "the empty store's next steps")
        click("#add-demo")
        wait(lambda d: script("return [...document.querySelectorAll('#installed tr[data-model]')].some(r => r.dataset.model === 'demo:tiny');"),
             "the demo model installed")
        errors = severe_console(driver)
        assert not errors, f"console errors: {errors}"
    except AssertionError as failure:
        state = script("return [document.getElementById('error').hidden ? '' : document.getElementById('error-text').textContent,"
                       " [...document.querySelectorAll('#jobs tr')].map(r => r.textContent)];")
        print(f"ui_storage_check: {failure}; page error and jobs: {state}", file=sys.stderr)
        return 1
    finally:
        driver.quit()
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
