#!/usr/bin/env python3
"""The web UI of an agent started with --token, in headless Chromium.

    ui_token_check.py BASE_URL TOKEN INSTALLED

The page must ask for the token once (a prompt), then list INSTALLED; after a reload it must
list it again without asking (the token is kept in the browser). A wrong token is asked for
again. Prints one JSON line and exits 0, or names the failed step and exits 1.
"""
import json
import sys
import time

from selenium.common.exceptions import NoAlertPresentException, WebDriverException

from ui_check import NAMES, start_browser


def wait(condition, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            value = condition()
            if value:
                return value
        except (NoAlertPresentException, WebDriverException):
            pass
        time.sleep(0.2)
    return None


def main(argv):
    base, token, installed = argv[1].rstrip("/"), argv[2], argv[3]
    driver = start_browser()
    try:
        driver.get(base + "/")
        alert = wait(lambda: driver.switch_to.alert)
        if not alert:
            print("step: no prompt for the token")
            return 1
        alert.send_keys(token)
        alert.accept()
        # Several requests may have asked at once: answer any further prompt the same way.
        def listed():
            try:
                extra = driver.switch_to.alert
                extra.send_keys(token)
                extra.accept()
            except NoAlertPresentException:
                pass
            return installed in (driver.execute_script(NAMES, "#installed") or [])
        if not wait(listed):
            print("step: the list did not load with the token")
            return 1
        kept = driver.execute_script("return localStorage.getItem('depot-token')")
        driver.refresh()
        if not wait(lambda: installed in (driver.execute_script(NAMES, "#installed") or [])):
            print("step: after a reload the list did not load")
            return 1
        try:
            driver.switch_to.alert
            print("step: asked again after a reload")
            return 1
        except NoAlertPresentException:
            pass
        print(json.dumps({"prompted": True, "kept": kept == token, "listed": installed}))
        return 0 if kept == token else 1
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
