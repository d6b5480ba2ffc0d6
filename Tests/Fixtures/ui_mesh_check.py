#!/usr/bin/env python3
"""Checks the web UI's mesh panel in headless Chromium against what the agent knows.

    ui_mesh_check.py BASE_URL SCREENSHOT_PNG PEER_ADDRESS MODEL MINIMUM_CREDITS

The panel must show, within 60 s: this agent's id, seeding with some bytes sent, credits of
at least MINIMUM_CREDITS, PEER_ADDRESS among the nearby peers, and PEER_ADDRESS as a nearby
seeder of MODEL. Prints one JSON line (what the panel showed) and exits 0, or names what it
waited for and exits 1. Uses ui_check.py's browser set-up.
"""
import json
import re
import sys
import time
from pathlib import Path

from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.support.ui import WebDriverWait

from ui_check import start_browser, severe_console

PANEL = """
const text = (id) => (document.getElementById(id) || {}).textContent || '';
return { agent: text('mesh-agent'), seeding: text('mesh-seeding'), credits: text('mesh-credits'),
         peers: [...document.querySelectorAll('#peers tr')].map(r => [...r.children].map(c => c.textContent)),
         models: [...document.querySelectorAll('#mesh-models tr')].map(r => [...r.children].map(c => c.textContent)),
         peersEmptyHidden: document.getElementById('peers-empty').hidden };
"""


def main(argv):
    if len(argv) != 6:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    base, screenshot, peer, model, minimum = argv[1].rstrip("/"), Path(argv[2]), argv[3], argv[4], float(argv[5])
    driver = start_browser()
    panel = {}

    def shows(_):
        nonlocal panel
        panel = driver.execute_script(PANEL)
        credits = re.match(r"(\d+\.\d+) credits for ", panel["credits"])
        sent = re.search(r"([\d.]+ [KMGT]?B) sent to peers", panel["seeding"])
        return (credits and float(credits.group(1)) >= minimum and sent and sent.group(1) != "0 B"
                and any(row and row[0] == peer for row in panel["peers"]) and panel["peersEmptyHidden"]
                and any(row[0] == model and peer in row[1] for row in panel["models"]))

    try:
        driver.get(base + "/")
        WebDriverWait(driver, 60, poll_frequency=0.2).until(shows)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
        print(json.dumps({"ok": True, "panel": panel, "consoleErrors": severe_console(driver)}), flush=True)
        return 0
    except (TimeoutException, WebDriverException) as error:
        print(f"ui_mesh_check: the panel never showed credits >= {minimum}, bytes sent, peer {peer} and it seeding {model}: "
              f"{json.dumps(panel)} ({getattr(error, 'msg', error)})", file=sys.stderr)
        driver.save_screenshot(str(screenshot.with_name(screenshot.stem + "-failed.png")))
        return 1
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
