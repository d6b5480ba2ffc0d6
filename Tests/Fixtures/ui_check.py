#!/usr/bin/env python3
"""Drives the Depot web UI in headless Chromium and checks the main flows.

    ui_check.py BASE_URL SCREENSHOT_PNG INSTALLED_A INSTALLED_B AVAILABLE_C

A and B must be installed and C must be a catalog model that is not installed; B must be
deletable (no app uses it). Steps: the lists load; Activate B; pick A in the picker;
Download C; Delete B; screenshot. Each step has 60 s. Prints one JSON summary line and
exits 0, or names the failed step, prints the page state and the browser's SEVERE console
entries and exits 1. Needs Debian's chromium and chromium-driver and selenium
(scripts/ui-deps installs them).
"""
import json
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import Select, WebDriverWait

STEP_SECONDS = 60
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# Records every banner state/model pair and every percentage a progress element shows, so
# short-lived states (loading, a fast download) are seen even between two polls.
RECORDER = """
if (!window.__check) {
  const check = window.__check = { banner: [], progress: {} };
  const banner = document.getElementById('banner');
  const recordBanner = () => {
    const entry = [banner.dataset.state || '', banner.dataset.model || ''];
    const last = check.banner[check.banner.length - 1];
    if (!last || last[0] !== entry[0] || last[1] !== entry[1]) check.banner.push(entry);
  };
  const recordProgress = () => {
    for (const row of document.querySelectorAll('#available tr[data-model]')) {
      for (const progress of row.querySelectorAll('.progress')) {
        if (progress.hidden || progress.offsetParent === null) continue;
        const match = /(\\d+(?:\\.\\d+)?)\\s*%/.exec(progress.textContent);
        if (!match) continue;
        const seen = check.progress[row.dataset.model] = check.progress[row.dataset.model] || [];
        if (seen[seen.length - 1] !== match[0]) seen.push(match[0]);
      }
    }
  };
  recordBanner();
  recordProgress();
  new MutationObserver(recordBanner).observe(banner, { attributes: true, attributeFilter: ['data-state', 'data-model'] });
  new MutationObserver(recordProgress).observe(document.getElementById('available'),
    { subtree: true, childList: true, characterData: true, attributes: true });
}
"""

ROW = "return [...document.querySelectorAll(arguments[0] + ' tr[data-model]')].find(r => r.dataset.model === arguments[1]) || null;"
NAMES = "return [...document.querySelectorAll(arguments[0] + ' tr[data-model]')].map(r => r.dataset.model);"
PAGE_STATE = """
const b = document.getElementById('banner'), p = document.getElementById('picker'), e = document.getElementById('error');
const text = document.getElementById('error-text') || e;
return { banner: b && [b.dataset.state, b.dataset.model], picker: p && p.value,
         error: e && !e.hidden ? text.textContent.trim() : null, connection: (document.getElementById('connection') || {}).textContent,
         installed: [...document.querySelectorAll('#installed tr[data-model]')].map(r => r.dataset.model),
         available: [...document.querySelectorAll('#available tr[data-model]')].map(r => r.dataset.model) };
"""


class StepFailed(Exception):
    pass


class Check:
    def __init__(self, driver):
        self.driver = driver
        self.step = "start"
        self.deadline = 0.0

    def begin(self, step):
        self.step = step
        self.deadline = time.monotonic() + STEP_SECONDS
        print(f"ui_check: {step}", file=sys.stderr, flush=True)

    def wait(self, condition, what):
        """Waits until condition(driver) is truthy, within what is left of the step's 60 s."""
        remaining = max(0.5, self.deadline - time.monotonic())
        try:
            return WebDriverWait(self.driver, remaining, poll_frequency=0.1).until(lambda d: condition(d))
        except TimeoutException:
            raise StepFailed(f"timed out after {STEP_SECONDS} s waiting for {what}; page: {json.dumps(self.page())}") from None

    def page(self):
        try:
            return self.driver.execute_script(PAGE_STATE)
        except WebDriverException as error:
            return {"unavailable": error.msg}

    def row(self, table, name):
        return self.driver.execute_script(ROW, table, name)

    def names(self, table):
        return self.driver.execute_script(NAMES, table) or []

    def banner(self):
        return self.driver.execute_script(
            "const b = document.getElementById('banner'); return b ? [b.dataset.state || '', b.dataset.model || ''] : null;")

    def picker_value(self):
        return self.driver.execute_script("const p = document.getElementById('picker'); return p ? p.value : null;")

    def recorded(self):
        return self.driver.execute_script("return window.__check || {banner: [], progress: {}};")

    def button(self, table, name, css):
        """The button in the row for name, once it is enabled."""
        def enabled(_):
            row = self.row(table, name)
            if row is None:
                return None
            buttons = row.find_elements("css selector", css)
            return buttons[0] if buttons and buttons[0].is_enabled() else None
        return self.wait(enabled, f"an enabled {css} button in the {table} row for {name}")

    def no_error(self, what):
        error = self.page().get("error")
        if error:
            raise StepFailed(f"the page shows an error after {what}: {error}")

    def ends_ready_with(self, name, what):
        def done(_):
            state, model = self.banner() or ("", "")
            if state == "failed" and model == name:
                raise StepFailed(f"the banner reports that {name} failed to load: {self.page()}")
            return state == "ready" and model == name and self.picker_value() == name
        self.wait(done, f'banner data-state="ready" data-model="{name}" and the picker showing {name} ({what})')


def start_browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--window-size=1280,900", "--disable-dev-shm-usage",
                     "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(STEP_SECONDS)
    driver.set_script_timeout(STEP_SECONDS)
    return driver


def waiter(driver):
    """wait(condition, what, seconds=60) -> the condition's truthy value, else AssertionError
    naming what was awaited; and script(text, *arguments) -> the page's answer."""
    def wait(condition, what, seconds=STEP_SECONDS):
        try:
            return WebDriverWait(driver, seconds, poll_frequency=0.1).until(lambda d: condition(d))
        except TimeoutException:
            raise AssertionError(f"timed out waiting for {what}") from None

    def script(text, *arguments):
        return driver.execute_script(text, *arguments)
    return wait, script


def severe_console(driver):
    try:
        return [entry.get("message", "") for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
    except WebDriverException:
        return []


def run(check, base, a, b, c, summary):
    driver = check.driver

    check.begin(f"1 load the page: {a} and {b} installed, {c} available")
    driver.get(base + "/")
    check.wait(lambda d: d.execute_script("return !!document.getElementById('banner');"), "the page")
    driver.execute_script(RECORDER)
    check.wait(lambda _: {a, b} <= set(check.names("#installed")), f"{a} and {b} in #installed")
    check.wait(lambda _: c in check.names("#available"), f"{c} in #available")
    summary["initialBanner"] = check.banner()
    summary["installedAtStart"] = check.names("#installed")
    summary["availableAtStart"] = check.names("#available")

    check.begin(f"2 Activate {b}")
    seen_before = len(check.recorded()["banner"])
    if check.banner() != ["ready", b]:
        check.button("#installed", b, "button.activate").click()
    check.ends_ready_with(b, f"after clicking Activate on {b}")
    states = [s for s in check.recorded()["banner"][seen_before:] if s[1] == b]
    if not any(state in ("loading", "ready") for state, _ in states):
        raise StepFailed(f"the banner never showed loading or ready for {b}: {check.recorded()['banner']}")
    check.no_error(f"activating {b}")
    summary["activateB"] = [s for s, _ in states]

    check.begin(f"3 choose {a} in the picker")
    seen_before = len(check.recorded()["banner"])
    picker = check.wait(lambda d: d.execute_script(
        "const p = document.getElementById('picker');"
        "return p && !p.disabled && [...p.options].some(o => o.value === arguments[0] && !o.disabled) ? p : null;", a),
        f"an enabled #picker with an option {a}")
    Select(picker).select_by_value(a)
    check.ends_ready_with(a, f"after choosing {a} in the picker")
    check.no_error(f"choosing {a}")
    summary["pickA"] = [s for s, m in check.recorded()["banner"][seen_before:] if m == a]

    check.begin(f"4 Download {c}")
    check.button("#available", c, "button.download").click()

    def progress_or_installed(_):
        if check.page().get("error"):
            raise StepFailed(f"the page shows an error after clicking Download: {check.page()['error']}")
        return bool(check.recorded()["progress"].get(c)) or c in check.names("#installed")
    check.wait(progress_or_installed, f"a percentage in the progress element of {c}, or {c} in #installed")
    check.wait(lambda _: c in check.names("#installed") and c not in check.names("#available"),
               f"{c} in #installed and gone from #available")
    check.no_error(f"downloading {c}")
    summary["downloadProgress"] = check.recorded()["progress"].get(c, [])

    check.begin(f"5 Delete {b}")
    delete = check.button("#installed", b, "button.delete")
    driver.execute_script("window.__confirmed = []; window.confirm = (m) => { window.__confirmed.push(String(m)); return true; };")
    delete.click()

    def gone(_):
        error = check.page().get("error")
        if error:
            raise StepFailed(f"deleting {b} was refused: {error}")
        return b not in check.names("#installed")
    check.wait(gone, f"{b} to leave #installed")
    if not driver.execute_script("return (window.__confirmed || []).length;"):
        raise StepFailed("Delete did not ask for confirmation with window.confirm")
    summary["confirm"] = driver.execute_script("return window.__confirmed[0];")

    check.begin("6 screenshot")
    check.wait(lambda d: d.execute_script("return document.readyState === 'complete';"), "the page to settle")
    time.sleep(0.5)   # let the progress bar and banner transitions finish
    summary["finalBanner"] = check.banner()
    summary["installedAtEnd"] = check.names("#installed")
    summary["availableAtEnd"] = check.names("#available")
    summary["bannerStates"] = [f"{state}:{model}" if model else state for state, model in check.recorded()["banner"]]


def main(argv):
    if len(argv) != 6:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    base, screenshot, a, b, c = argv[1].rstrip("/"), Path(argv[2]), argv[3], argv[4], argv[5]
    summary = {"ok": False, "base": base}
    try:
        driver = start_browser()
    except WebDriverException as error:
        print(f"ui_check: FAILED to start Chromium ({CHROMIUM}, {CHROMEDRIVER}); run scripts/ui-deps: {error.msg}",
              file=sys.stderr)
        return 1
    check = Check(driver)
    try:
        run(check, base, a, b, c, summary)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        if not driver.save_screenshot(str(screenshot)):
            raise StepFailed(f"could not write {screenshot}")
        summary.update(ok=True, screenshot=str(screenshot), consoleErrors=severe_console(driver))
        print(json.dumps(summary), flush=True)
        return 0
    except (StepFailed, WebDriverException, AssertionError) as error:
        message = error.msg if isinstance(error, WebDriverException) else str(error)
        print(f"ui_check: FAILED at step {check.step}: {message}", file=sys.stderr)
        failure_shot = screenshot.with_name(screenshot.stem + "-failed.png")
        try:
            driver.save_screenshot(str(failure_shot))
            print(f"ui_check: screenshot of the failure: {failure_shot}", file=sys.stderr)
        except WebDriverException:
            pass
        console = severe_console(driver)
        print(f"ui_check: browser console SEVERE entries ({len(console)}):", file=sys.stderr)
        for line in console:
            print(f"  {line}", file=sys.stderr)
        summary.update(failedStep=check.step, reason=message)
        print(json.dumps(summary), flush=True)
        return 1
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
