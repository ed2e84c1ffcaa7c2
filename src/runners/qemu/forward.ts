// One allowed guest connection, forwarded: QEMU's user-mode network runs this for each TCP connection the
// guest opens to a destination --network-allow lists (`guestfwd=...-cmd:`), with the connection as stdin and
// stdout. Every other destination is dropped by `restrict=on`, so nothing leaves the VM unlisted.
//   node forward.ts HOST PORT
import net from 'node:net';

const [host, port] = process.argv.slice(2) as [string, string];
const socket = net.connect({ host, port: Number(port) });
socket.setNoDelay(true);
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on('error', () => process.exit(1));
socket.on('close', () => process.exit(0));
process.stdin.on('end', () => socket.end());
