"""A sluice client: sends each line of stdin as a request, prints every line that comes back
until the replies to all requests have arrived.  Usage: python3 client.py HOST PORT < requests"""
import json, socket, sys

connection = socket.create_connection((sys.argv[1], int(sys.argv[2])))
lines = connection.makefile("rw")
requests = [line for line in sys.stdin if line.strip()]
lines.write("".join(requests)); lines.flush()
replies = 0
while replies < len(requests):
    line = lines.readline(); print(line, end="")
    replies += "ok" in json.loads(line)
