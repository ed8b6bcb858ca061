"""A sluice client: sends each line of stdin as a request, prints every line that comes back
until the replies to all requests have arrived.  Usage: python3 client.py HOST PORT [CA] < requests
With CA, it speaks TLS: CA is a PEM file of the certificates to trust, or "-" for the system's."""
import json, socket, ssl, sys

connection = socket.create_connection((sys.argv[1], int(sys.argv[2])))
if len(sys.argv) > 3:
    trusted = ssl.create_default_context(cafile=None if sys.argv[3] == "-" else sys.argv[3])
    connection = trusted.wrap_socket(connection, server_hostname=sys.argv[1])
lines = connection.makefile("rw")
requests = [line for line in sys.stdin if line.strip()]
lines.write("".join(requests)); lines.flush()
replies = 0
while replies < len(requests):
    line = lines.readline(); print(line, end="")
    replies += "ok" in json.loads(line)
