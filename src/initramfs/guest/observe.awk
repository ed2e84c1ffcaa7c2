# builder's observability converter: reads tracefs text (trace_pipe of the hook's instance) and writes one
# JSON event per line. Run by the observe hook with busybox awk; kept to POSIX awk so it also runs elsewhere.
#
#   awk -v events=FILE -v stats=FILE -v token=HEX [-v ready=FILE] [-v max_bytes=N] [-v proc=DIR|none] \
#       -f observe.awk INPUT
#
# Events written (see src/observe/events.ts for the host's view of them):
#   {"type":"exec", time, pid, ppid, uid, filename, binary, comm, argv?, argv_complete, scope}
#   {"type":"net", function: tcp_connect|tcp_close|udp_sendmsg, time, pid, process, binary, uid, protocol,
#     family, src_addr, src_port, dst_addr, dst_port, outcome?, scope}
#   {"type":"lost", time, cpu, count}
# Lines of trace text are attacker-influenced (file names, argv and task names come from the build), so each
# physical line is parsed on its own: a string with a newline in it can add a garbled line, never swallow the
# next real record. The header is found by its shape wherever it is on the line, not at its start, because
# a task name may itself contain a newline.
#
# Processes are tracked by thread-group id (tgid): task_newtask gives parents (and threads), set*uid kprobes
# the real uid, exec the binary and the name (task names in the trace text are a cache the kernel fills at
# context switches, so they can be stale). "scope" is "build" for a step's command and everything it starts,
# "builder" for the VM's own plumbing (init, SSH sessions, the build channel that enters the build root).

BEGIN {
	if (events == "") events = "/dev/stdout"
	if (max_bytes == "") max_bytes = 67108864
	BUILD_CHANNEL = "/usr/libexec/builder/build-channel"
	HEADER = "-[0-9]+ +(\\([ 0-9-]+\\) +)?\\[[0-9]+\\] [^ ]+ +[0-9]+\\.[0-9]+: [a-zA-Z0-9_]+: "
	HEX = "0123456789abcdef"
	for (i = 1; i < 32; i++) CTRL = CTRL sprintf("%c", i)
	CTRL_RE = "[" CTRL "]"
	written = 0; bytes = 0; dropped = 0; unparsed = 0; lost = 0; lines = 0
	now = 0
	if (proc != "none") seed()
	# Tells the hook the converter is ready (and has seen the processes that exist now).
	if (ready != "") { printf "" > ready; close(ready) }
}

# ---------------------------------------------------------------------------------------------------------
# Processes that exist before tracing starts (init, the hook itself): their parent, uid and binary.

function seed(    cmd, d, f, line, k, v, tg, u, parts) {
	if (proc == "") proc = "/proc"
	cmd = "ls " proc
	while ((cmd | getline d) > 0) {
		if (d !~ /^[0-9]+$/) continue
		f = proc "/" d "/status"
		tg = d
		while ((getline line < f) > 0) {
			k = line; sub(/:.*/, "", k)
			v = line; sub(/^[^:]*:[ \t]*/, "", v)
			if (k == "Tgid") tg = v + 0
			else if (k == "PPid") ppid[d] = v + 0
			else if (k == "Name") pname[d] = v
			else if (k == "Uid") { split(v, u, /[ \t]+/); uid[d] = u[1] + 0 }
		}
		close(f)
		tgid[d] = tg
	}
	close(cmd)
	# The binaries of processes that already run (init, this hook): `ls -l` shows where exe points.
	cmd = "ls -l " proc "/[0-9]*/exe 2>/dev/null"
	while ((cmd | getline line) > 0) {
		if (!match(line, / -> /)) continue
		v = substr(line, RSTART + 4)
		d = substr(line, 1, RSTART - 1)
		sub(/\/exe$/, "", d); sub(/.*\//, "", d)
		if (d ~ /^[0-9]+$/) exe[d] = v
	}
	close(cmd)
}

# ---------------------------------------------------------------------------------------------------------
# Output

# Literal replacement (gsub's replacement strings treat backslashes differently from one awk to the next).
function replace_all(s, find, rep,    out, i) {
	out = ""
	while ((i = index(s, find)) > 0) {
		out = out substr(s, 1, i - 1) rep
		s = substr(s, i + length(find))
	}
	return out s
}

function jstr(s,    out, c, i) {
	if (index(s, "\\")) s = replace_all(s, "\\", "\\\\")
	if (index(s, "\"")) s = replace_all(s, "\"", "\\\"")
	if (s ~ CTRL_RE) {
		s = replace_all(s, "\n", "\\n")
		s = replace_all(s, "\t", "\\t")
		s = replace_all(s, "\r", "\\r")
		if (s ~ CTRL_RE) {
			out = ""
			for (i = 1; i <= length(s); i++) {
				c = substr(s, i, 1)
				if (index(CTRL, c)) out = out sprintf("\\u%04x", index(CTRL, c))
				else out = out c
			}
			s = out
		}
	}
	return "\"" s "\""
}

function jnum(n) {
	return n == "" ? "null" : n + 0
}

function emit(record) {
	if (bytes + length(record) + 1 > max_bytes) {
		dropped++
		return
	}
	print record > events
	written++
	bytes += length(record) + 1
}

# ---------------------------------------------------------------------------------------------------------
# Helpers

function tg_of(pid) {
	return (pid in tgid) ? tgid[pid] : pid
}

function scope_of(tg) {
	return scope[tg] == "build" ? "build" : "builder"
}

function hex2num(h,    n, i) {
	n = 0
	h = tolower(h)
	sub(/^0x/, "", h)
	for (i = 1; i <= length(h); i++) n = n * 16 + index(HEX, substr(h, i, 1)) - 1
	return n
}

# Bit `bit` (a power of two) of a number held exactly as a double.
function has_bit(n, bit) {
	return int(n / bit) % 2 == 1
}

# A u32 read in host (little-endian) order from bytes in network order.
function ipv4(v) {
	v = v + 0
	return (v % 256) "." (int(v / 256) % 256) "." (int(v / 65536) % 256) "." (int(v / 16777216) % 256)
}

function port(v) {
	v = v + 0
	return (v % 256) * 256 + int(v / 256) % 256
}

# Four u32 words read little-endian from a network-order IPv6 address → RFC 5952 text.
function ipv6(w0, w1, w2, w3,    g, i, w, best, bestlen, run, runlen, out) {
	w[0] = w0 + 0; w[1] = w1 + 0; w[2] = w2 + 0; w[3] = w3 + 0
	for (i = 0; i < 4; i++) {
		g[2 * i] = (w[i] % 256) * 256 + int(w[i] / 256) % 256
		g[2 * i + 1] = (int(w[i] / 65536) % 256) * 256 + int(w[i] / 16777216) % 256
	}
	if (g[0] == 0 && g[1] == 0 && g[2] == 0 && g[3] == 0 && g[4] == 0 && g[5] == 65535)
		return "::ffff:" int(g[6] / 256) "." (g[6] % 256) "." int(g[7] / 256) "." (g[7] % 256)
	best = -1; bestlen = 0; run = -1; runlen = 0
	for (i = 0; i < 8; i++) {
		if (g[i] == 0) {
			if (run < 0) { run = i; runlen = 0 }
			runlen++
			if (runlen > bestlen) { best = run; bestlen = runlen }
		} else run = -1
	}
	if (bestlen < 2) best = -1
	out = ""
	for (i = 0; i < 8; i++) {
		if (i == best) { out = out "::"; i += bestlen - 1; continue }
		if (out != "" && substr(out, length(out), 1) != ":") out = out ":"
		out = out sprintf("%x", g[i])
	}
	return out
}

# key=value pairs of a payload without spaces in its values → kv[]
function fields(payload,    n, parts, i, eq) {
	split("", kv)
	n = split(payload, parts, " ")
	for (i = 1; i <= n; i++) {
		eq = index(parts[i], "=")
		if (eq > 1) kv[substr(parts[i], 1, eq - 1)] = substr(parts[i], eq + 1)
	}
}

# ---------------------------------------------------------------------------------------------------------
# Events

function on_newtask(pid, payload,    child, flags, parent_tg) {
	if (!match(payload, /^pid=[0-9]+ /)) return 0
	child = substr(payload, 5, RLENGTH - 5) + 0
	if (!match(payload, / clone_flags=[0-9a-f]+ oom_score_adj=-?[0-9]+$/)) return 0
	flags = substr(payload, RSTART + 13, RLENGTH - 13)
	sub(/ .*/, "", flags)
	flags = hex2num(flags)
	parent_tg = tg_of(pid)
	if (has_bit(flags, 65536)) {
		# CLONE_THREAD: a thread of the same process.
		tgid[child] = parent_tg
		return 1
	}
	tgid[child] = child
	# CLONE_PARENT: a sibling of the caller.
	ppid[child] = has_bit(flags, 32768) ? ppid[parent_tg] : parent_tg
	if (parent_tg in uid) uid[child] = uid[parent_tg]
	else delete uid[child]
	if (parent_tg in exe) exe[child] = exe[parent_tg]
	else delete exe[child]
	if (parent_tg in pname) pname[child] = pname[parent_tg]
	else delete pname[child]
	if (parent_tg in scope) scope[child] = scope[parent_tg]
	else delete scope[child]
	return 1
}

# argv chunk K of an execve: pointers p0..p(4K+4), strings a(4K)..a(4K+3). The kprobes of one execve fire
# back to back in an order the kernel chooses; chunks belong together when their first five pointers agree.
function on_argv(pid, name, payload,    k, first, i, idx, ptrs, rest, key, val, q, n) {
	k = name; sub(/^(at)?argv/, "", k); k += 0
	first = k * 4
	idx = index(payload, " a" first "=")
	if (idx == 0) return 0
	fields(substr(payload, 1, idx - 1))
	for (i = 0; i <= first + 4; i++) ptrs[i] = kv["p" i]
	rest = substr(payload, idx + 1)
	ch_has[pid, k] = 1
	ch_sig[pid, k] = ptrs[0] " " ptrs[1] " " ptrs[2] " " ptrs[3] " " ptrs[4]
	ch_bad[pid, k] = 0
	ch_end[pid, k] = -1
	for (i = first; i < first + 4; i++) {
		key = "a" i "="
		if (ptrs[i] == "0x0") { ch_end[pid, k] = i; return 1 }
		if (substr(rest, 1, length(key)) != key) break
		rest = substr(rest, length(key) + 1)
		# (fault): a pointer that could not be read without faulting its page in; the argument is unknown.
		if (substr(rest, 1, 1) != "\"") break
		rest = substr(rest, 2)
		if (i < first + 3) {
			q = index(rest, "\" a" (i + 1) "=")
			if (q == 0) break
			val = substr(rest, 1, q - 1)
			rest = substr(rest, q + 2)
		} else {
			n = length(rest)
			if (substr(rest, n, 1) != "\"") break
			val = substr(rest, 1, n - 1)
		}
		ch_arg[pid, i] = val
	}
	if (i < first + 4) {
		ch_bad[pid, k] = 1
		ch_end[pid, k] = i
	} else if (ptrs[first + 4] == "0x0") ch_end[pid, k] = first + 4
	return 1
}

# The arguments of the execve that `caller` made, as a JSON fragment (empty when none were recorded).
function take_argv(caller,    sig, k, i, last, args, complete, out) {
	if (!((caller, 0) in ch_has)) return ""
	sig = ch_sig[caller, 0]
	argv0 = ch_arg[caller, 0]
	args = ""
	complete = 1
	for (k = 0; k < 8; k++) {
		if (!((caller, k) in ch_has) || ch_sig[caller, k] != sig) { complete = 0; break }
		last = ch_end[caller, k] < 0 ? k * 4 + 4 : ch_end[caller, k]
		for (i = k * 4; i < last; i++) args = args (i ? "," : "") jstr(ch_arg[caller, i])
		if (ch_bad[caller, k]) { complete = 0; break }
		if (ch_end[caller, k] >= 0) break
	}
	# Eight chunks and still more arguments: the rest were not recorded.
	if (k == 8) complete = 0
	for (k = 0; k < 8; k++) {
		delete ch_has[caller, k]; delete ch_sig[caller, k]; delete ch_bad[caller, k]; delete ch_end[caller, k]
		for (i = k * 4; i < k * 4 + 4; i++) delete ch_arg[caller, i]
	}
	return ",\"argv\":[" args "],\"argv_complete\":" (complete ? "true" : "false")
}

function basename(p) {
	sub(/\/+$/, "", p)
	sub(/.*\//, "", p)
	return p
}

# Task names in trace text come from a cache the kernel fills at context switches, so they can be stale; the
# name of a process is taken from what it executed instead (busybox applets: the applet), like the kernel's.
function on_exec(pid, comm, payload,    tg, old, filename, binary, rec, argv_json, complete_name, nm) {
	if (substr(payload, 1, 9) != "filename=") return 0
	if (match(payload, / pid=[0-9]+ old_pid=[0-9]+$/)) {
		filename = substr(payload, 10, RSTART - 10)
		tg = substr(payload, RSTART + 5); sub(/ .*/, "", tg); tg += 0
		old = substr(payload, RSTART + 1); sub(/.*old_pid=/, "", old); old += 0
		complete_name = 1
	} else {
		# The file name had a newline in it: keep what this line has.
		filename = substr(payload, 10)
		tg = pid
		old = pid
		complete_name = 0
	}
	tgid[tg] = tg
	binary = filename
	# Busybox runs its applets as /proc/self/exe: the binary is the one the process was running.
	if (filename == "/proc/self/exe" && (tg in exe)) binary = exe[tg]
	exe[tg] = binary
	# The build channel's plumbing (see build-channel and enter-root) runs first in a step's process; the first
	# program that is not part of it is the step's own command.
	if (filename == BUILD_CHANNEL) scope[tg] = "channel"
	else if (scope[tg] == "channel") {
		if (substr(filename, 1, 13) == "/proc/1/root/") scope[tg] = "chroot"
		else if (filename != "/bin/busybox" && filename != "/proc/self/exe") scope[tg] = "build"
	} else if (scope[tg] == "chroot") {
		if (substr(filename, 1, 13) != "/proc/1/root/" && filename != "/proc/self/exe") scope[tg] = "build"
	}
	argv0 = ""
	argv_json = take_argv(old)
	if (argv_json == "" && old != pid) argv_json = take_argv(pid)
	nm = basename(filename)
	if (filename == "/proc/self/exe") nm = argv0 != "" ? basename(argv0) : "exe"
	# The kernel keeps 15 bytes of it.
	pname[tg] = substr(nm, 1, 15)
	rec = "{\"type\":\"exec\",\"time\":" now ",\"pid\":" tg ",\"ppid\":" jnum(ppid[tg]) ",\"uid\":" jnum(uid[tg]) \
		",\"filename\":" jstr(filename) ",\"binary\":" jstr(binary) ",\"comm\":" jstr(pname[tg])
	if (!complete_name) rec = rec ",\"filename_complete\":false"
	rec = rec argv_json
	rec = rec ",\"scope\":\"" scope_of(tg) "\"}"
	emit(rec)
	return 1
}

function set_uid(pid, which, ret,    tg, v) {
	if (!((pid, which) in pending_uid)) return
	v = pending_uid[pid, which]
	delete pending_uid[pid, which]
	if (ret != 0 || v == 4294967295) return
	tg = tg_of(pid)
	# setuid(2) changes the real uid only when privileged; the others set it when asked to.
	if (which == "setuid" && (tg in uid) && uid[tg] != 0) return
	uid[tg] = v
}

function net_record(fn, tg, process, proto, family, saddr, sport, daddr, dport, extra) {
	return "{\"type\":\"net\",\"function\":\"" fn "\",\"time\":" now ",\"pid\":" tg ",\"process\":" jstr(process) \
		",\"binary\":" ((tg in exe) ? jstr(exe[tg]) : "null") ",\"uid\":" jnum(uid[tg]) ",\"protocol\":\"" proto "\",\"family\":\"" family "\"" \
		",\"src_addr\":" jstr(saddr) ",\"src_port\":" sport ",\"dst_addr\":" jstr(daddr) ",\"dst_port\":" dport extra \
		",\"scope\":\"" scope_of(tg) "\"}"
}

# Outbound TCP, from inet_sock_set_state. A connect is CLOSE -> SYN_SENT in the connecting task (the source
# port is not chosen yet); SYN_SENT -> ESTABLISHED|CLOSE (often in softirq context, any task) completes it and
# carries the port. They are matched by address and destination, first in first out.
function on_tcp(pid, comm, payload,    family, saddr, daddr, key, id, tuple, outcome, oldst, newst, tg) {
	fields(payload)
	if (kv["family"] == "AF_INET") { family = "ipv4"; saddr = kv["saddr"]; daddr = kv["daddr"] }
	else if (kv["family"] == "AF_INET6") { family = "ipv6"; saddr = kv["saddrv6"]; daddr = kv["daddrv6"] }
	else return 0
	oldst = kv["oldstate"]; newst = kv["newstate"]
	key = family SUBSEP saddr SUBSEP daddr SUBSEP kv["dport"]
	if (newst == "TCP_SYN_SENT") {
		id = ++tcp_seq
		tg = tg_of(pid)
		c_time[id] = now; c_tg[id] = tg; c_comm[id] = (tg in pname) ? pname[tg] : comm; c_family[id] = family
		c_saddr[id] = saddr; c_daddr[id] = daddr; c_dport[id] = kv["dport"] + 0
		c_exe[id] = (tg in exe) ? exe[tg] : ""; c_uid[id] = uid[tg]; c_scope[id] = scope_of(tg)
		q_tail[key]++
		queue[key, q_tail[key]] = id
		return 1
	}
	if (oldst == "TCP_SYN_SENT") {
		if (!(key in q_tail) || q_head[key] >= q_tail[key]) return 1
		q_head[key]++
		id = queue[key, q_head[key]]
		delete queue[key, q_head[key]]
		c_sport[id] = kv["sport"] + 0
		outcome = newst == "TCP_ESTABLISHED" ? "established" : "failed"
		emit_connect(id, outcome)
		if (newst == "TCP_ESTABLISHED") {
			open_conn[family, saddr, c_sport[id], daddr, c_dport[id]] = id
		} else {
			emit_close(id, 0)
			forget(id)
		}
		return 1
	}
	if (newst == "TCP_CLOSE") {
		tuple = family SUBSEP saddr SUBSEP (kv["sport"] + 0) SUBSEP daddr SUBSEP (kv["dport"] + 0)
		if (!(tuple in open_conn)) return 1
		id = open_conn[tuple]
		delete open_conn[tuple]
		emit_close(id, 1)
		forget(id)
	}
	return 1
}

function connection(fn, id, at, extra,    saved, tg, r) {
	saved = now
	now = at
	tg = c_tg[id]
	# The connecting process's view, even when the event itself ran in softirq context.
	r = "{\"type\":\"net\",\"function\":\"" fn "\",\"time\":" at ",\"pid\":" tg ",\"process\":" jstr(c_comm[id]) \
		",\"binary\":" (c_exe[id] == "" ? "null" : jstr(c_exe[id])) ",\"uid\":" jnum(c_uid[id]) ",\"protocol\":\"tcp\",\"family\":\"" c_family[id] "\"" \
		",\"src_addr\":" jstr(c_saddr[id]) ",\"src_port\":" (c_sport[id] + 0) ",\"dst_addr\":" jstr(c_daddr[id]) ",\"dst_port\":" c_dport[id] extra \
		",\"scope\":\"" c_scope[id] "\"}"
	now = saved
	return r
}

function emit_connect(id, outcome) {
	emit(connection("tcp_connect", id, c_time[id], ",\"outcome\":\"" outcome "\""))
}

function emit_close(id, established) {
	emit(connection("tcp_close", id, now, ",\"established\":" (established ? "true" : "false")))
}

function forget(id) {
	delete c_time[id]; delete c_tg[id]; delete c_comm[id]; delete c_family[id]; delete c_saddr[id]
	delete c_daddr[id]; delete c_dport[id]; delete c_sport[id]; delete c_exe[id]; delete c_uid[id]; delete c_scope[id]
}

# UDP: one event per process and destination (the first datagram), not one per datagram.
function udp_event(pid, comm, family, saddr, sport, daddr, dport,    tg, key) {
	tg = tg_of(pid)
	key = tg SUBSEP family SUBSEP daddr SUBSEP dport
	if (key in udp_seen) return
	udp_seen[key] = 1
	emit(net_record("udp_sendmsg", tg, (tg in pname) ? pname[tg] : comm, "udp", family, saddr, sport, daddr, dport, ""))
}

function on_udp(pid, comm, payload,    daddr, dport) {
	fields(payload)
	if (kv["nfam"] == "2") { daddr = ipv4(kv["naddr"]); dport = port(kv["nport"]) }
	else { daddr = ipv4(kv["daddr"]); dport = port(kv["dport"]) }
	if (daddr == "0.0.0.0") return 1
	udp_event(pid, comm, "ipv4", ipv4(kv["saddr"]), kv["sport"] + 0, daddr, dport)
	return 1
}

function on_udp6(pid, comm, name, payload,    daddr, dport, peer) {
	fields(payload)
	if (kv["nfam"] == "10") {
		daddr = ipv6(kv["a0"], kv["a1"], kv["a2"], kv["a3"])
		dport = port(kv["nport"])
		if (name == "udp6_connect") {
			udp6_peer[kv["sk"]] = daddr SUBSEP dport
			return 1
		}
	} else if (name == "udp6" && (kv["sk"] in udp6_peer)) {
		split(udp6_peer[kv["sk"]], peer, SUBSEP)
		daddr = peer[1]; dport = peer[2]
	} else return 1
	# IPv4-mapped destinations go through udp_sendmsg as well, which reports them as IPv4.
	if (name != "udp6" || substr(daddr, 1, 7) == "::ffff:") return 1
	udp_event(pid, comm, "ipv6", "", 0, daddr, dport)
	return 1
}

function finish(    id) {
	if (finished) return
	finished = 1
	# Connects still waiting for an answer when recording stopped.
	for (id = 1; id <= tcp_seq; id++) if (id in c_time) {
		if (c_sport[id] == "") emit_connect(id, "pending")
	}
	close(events)
	if (stats != "") {
		printf "{\"lines\":%d,\"events\":%d,\"bytes\":%d,\"dropped\":%d,\"lost\":%d,\"unparsed\":%d,\"marker\":%s,\"last_time\":%s}\n", \
			lines, written, bytes, dropped, lost, unparsed, (seen_marker ? "true" : "false"), (now == "" ? 0 : now) > stats
		close(stats)
	}
	exit 0
}

# ---------------------------------------------------------------------------------------------------------

{
	lines++
	line = $0
	if (match(line, /^CPU:[0-9]+ \[LOST [0-9]+ EVENTS\]$/)) {
		n = line; sub(/.*LOST /, "", n); sub(/ .*/, "", n)
		c = line; sub(/^CPU:/, "", c); sub(/ .*/, "", c)
		lost += n
		emit("{\"type\":\"lost\",\"time\":" (now == "" ? 0 : now) ",\"cpu\":" c ",\"count\":" n "}")
		next
	}
	if (!match(line, HEADER)) { unparsed++; next }
	head = substr(line, RSTART, RLENGTH)
	comm = substr(line, 1, RSTART - 1)
	sub(/^ +/, "", comm)
	payload = substr(line, RSTART + RLENGTH)
	pid = substr(head, 2); sub(/[^0-9].*/, "", pid); pid += 0
	n = split(head, hp, ": ")
	name = hp[n - 1]
	ts = hp[n - 2]; sub(/.* /, "", ts)
	now = ts
	ok = 0
	if (name == "sched_process_exec") ok = on_exec(pid, comm, payload)
	else if (name == "task_newtask") ok = on_newtask(pid, payload)
	else if (name == "inet_sock_set_state") ok = on_tcp(pid, comm, payload)
	else if (name ~ /^(at)?argv[0-7]$/) {
		sub(/^\([^)]*\) /, "", payload)
		ok = on_argv(pid, name, payload)
	} else if (name == "setuid" || name == "setreuid" || name == "setresuid") {
		sub(/^\([^)]*\) /, "", payload)
		fields(payload)
		pending_uid[pid, name] = kv["uid"]
		ok = 1
	} else if (name ~ /_ret$/) {
		sub(/^\([^)]*\) /, "", payload)
		fields(payload)
		w = name; sub(/_ret$/, "", w)
		set_uid(pid, w, kv["ret"] + 0)
		ok = 1
	} else if (name == "udp") {
		sub(/^\([^)]*\) /, "", payload)
		ok = on_udp(pid, comm, payload)
	} else if (name == "udp6" || name == "udp6_connect") {
		sub(/^\([^)]*\) /, "", payload)
		ok = on_udp6(pid, comm, name, payload)
	} else if (name == "tracing_mark_write") {
		if (token != "" && payload == "builder-observe-stop " token) {
			seen_marker = 1
			finish()
		}
		ok = 1
	}
	if (!ok) unparsed++
}

END {
	finish()
}
