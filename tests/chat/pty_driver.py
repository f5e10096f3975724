"""Drives a command in a pseudo-terminal, as a person at a terminal would (tests/chat/chat_cli_test.ts).

argv[1]: the command as a JSON list; argv[2]: the steps as a JSON list of
  {"expect": TEXT, "timeout": S}  wait until TEXT appears in the output after the previous match
  {"more": N, "timeout": S}       wait until N more bytes came after the previous match
  {"send": TEXT}                  type TEXT (UTF-8; "\\r" is Enter, "\\x7f" backspace, "\\x03" Ctrl-C)
Prints one JSON object: {"output": all output, "code": exit status, "error": the step that failed or null}.
"""
import json
import os
import pty
import select
import sys
import time

cmd = json.loads(sys.argv[1])
steps = json.loads(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)

out = b""
mark = 0


def pump(timeout):
    global out
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return True
    try:
        data = os.read(fd, 4096)
    except OSError:
        return False
    if not data:
        return False
    out += data
    return True


error = None
for step in steps:
    if "send" in step:
        os.write(fd, step["send"].encode("utf-8"))
        continue
    if "more" in step:
        deadline = time.time() + step.get("timeout", 60)
        while len(out) < mark + step["more"]:
            if time.time() > deadline or not pump(0.2):
                break
        if len(out) < mark + step["more"]:
            error = step
            break
        mark = len(out)
        continue
    want = step["expect"].encode("utf-8")
    deadline = time.time() + step.get("timeout", 60)
    while out.find(want, mark) < 0:
        if time.time() > deadline or not pump(0.2):
            break
    at = out.find(want, mark)
    if at < 0:
        error = step
        break
    mark = at + len(want)

code = None
deadline = time.time() + 60
while code is None and time.time() < deadline:
    pump(0.1)
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        code = os.waitstatus_to_exitcode(status)
if code is None:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
deadline = time.time() + 2
while time.time() < deadline and pump(0.05):
    pass
print(json.dumps({"output": out.decode("utf-8", "replace"), "code": code, "error": error}))
