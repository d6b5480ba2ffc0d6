#!/usr/bin/env python3
"""Checks the web UI's chat and import panels in headless Chromium, at desktop and phone width.

    ui_chat_check.py BASE_URL ARTIFACTS_DIR SCRIPTED_MODEL REPLY FOUND_MODEL

SCRIPTED_MODEL is installed and answers REPLY (HTML that must never run); FOUND_MODEL is in
the agent's Ollama store and not installed. Steps: activate SCRIPTED_MODEL; send a message
holding HTML with the keyboard (Enter); the streamed answer must read REPLY as text, with no
element made from it or from the message and no script run; import FOUND_MODEL from the
import panel; at 390 px wide the page must not scroll sideways. Screenshots chat.png and
phone.png go to ARTIFACTS_DIR. Prints one JSON line and exits 0, or names the step that
failed and exits 1. Uses ui_check.py's browser set-up.
"""
import json
import sys
from pathlib import Path

from selenium.webdriver.common.keys import Keys

from ui_check import start_browser, severe_console, waiter

MESSAGE = 'hello <img src=x onerror="window.__xss = 2"> <b>bold</b>'
TURNS = """
return [...document.querySelectorAll('#transcript .turn')].map(t => ({
  role: t.classList.contains('user') ? 'user' : 'assistant', state: t.dataset.state || '',
  text: t.querySelector('.text').textContent, elements: t.querySelector('.text').children.length }));
"""


def main(argv):
    if len(argv) != 6:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    base, artifacts, model, reply, found = argv[1].rstrip("/"), Path(argv[2]), argv[3], argv[4], argv[5]
    driver = start_browser()
    seen = {}

    wait, script = waiter(driver)

    try:
        driver.get(base + "/")
        activate = wait(lambda d: script(
            "const r = [...document.querySelectorAll('#installed tr[data-model]')].find(r => r.dataset.model === arguments[0]);"
            "const b = r && r.querySelector('button.activate'); return b && !b.disabled ? b : null;", model), f"an Activate button for {model}")
        activate.click()
        wait(lambda d: script("const b = document.getElementById('banner'); return b.dataset.state === 'ready' && b.dataset.model === arguments[0];", model),
             f"{model} active")
        wait(lambda d: model in script("return document.getElementById('chat-with').textContent;"), "the chat naming the active model")

        field = driver.find_element("id", "chat-input")
        field.click()
        field.send_keys(MESSAGE)
        field.send_keys(Keys.ENTER)
        turns = wait(lambda d: (lambda t: t if len(t) == 2 and t[1]["state"] == "done" else None)(script(TURNS)), "the answer to end")
        assert turns[0] == {"role": "user", "state": "", "text": MESSAGE, "elements": 0}, f"the message as text: {turns[0]}"
        assert turns[1]["text"] == reply and turns[1]["elements"] == 0, f"the answer as text: {turns[1]}"
        assert script("return document.querySelectorAll('#transcript script, #transcript img, #transcript b').length") == 0, "no element from text"
        assert script("return window.__xss === undefined"), "no script ran"
        assert script("return document.activeElement && document.activeElement.id") == "chat-input", "the field has the focus back"
        seen["answer"] = turns[1]["text"]
        driver.save_screenshot(str(artifacts / "chat.png"))

        adopt = wait(lambda d: script(
            "const r = [...document.querySelectorAll('#found tr[data-model]')].find(r => r.dataset.model === arguments[0]);"
            "const b = r && r.querySelector('button.adopt'); return b && !b.disabled ? b : null;", found), f"an Import button for {found}")
        adopt.click()
        wait(lambda d: script(
            "const r = [...document.querySelectorAll('#found tr[data-model]')].find(r => r.dataset.model === arguments[0]);"
            "return r && r.querySelector('button.adopt').textContent === 'Imported';", found), f"{found} imported")
        driver.refresh()
        wait(lambda d: script("return [...document.querySelectorAll('#installed tr[data-model]')].some(r => r.dataset.model === arguments[0]);", found),
             f"{found} among the installed models")

        driver.set_window_size(390, 844)
        driver.refresh()
        wait(lambda d: script("return document.querySelectorAll('#installed tr[data-model]').length >= 2;"), "the lists at phone width")
        width = script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth];")
        seen["phone"] = width
        assert width[0] <= width[1], f"the page scrolls sideways at phone width: {width}"
        script("window.scrollTo(0, 0);")
        driver.save_screenshot(str(artifacts / "phone.png"))
        errors = severe_console(driver)
        assert not errors, f"console errors: {errors}"
    except AssertionError as failure:
        print(f"ui_chat_check: {failure}", file=sys.stderr)
        return 1
    finally:
        driver.quit()
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
