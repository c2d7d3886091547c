"""A command worker for email jobs: reads the job as JSON on stdin.

Exit status 0 with a JSON result on stdout is success. An address without '@'
fails every attempt (exit 2, the reason on stderr), so the job ends in error/
after max_attempts; `fail_attempts: N` in the payload fails the first N
attempts like a mail server that is briefly down.
"""

import json
import sys
import time

job = json.load(sys.stdin)
payload = job["payload"]
if "@" not in str(payload.get("to", "")):
    print(f"invalid recipient {payload.get('to')!r}", file=sys.stderr)
    sys.exit(2)
if job["attempt"] <= int(payload.get("fail_attempts", 0)):
    print("smtp: 421 service not available, try again later", file=sys.stderr)
    sys.exit(75)
time.sleep(0.01)
json.dump({"sent_to": payload["to"], "subject": payload.get("subject", "")}, sys.stdout)
