#!/usr/bin/env python3
# Summarises a dotnet-trace Speedscope file (dotnet-trace collect --profile dotnet-sampled-thread-time --format Speedscope):
# time of threads that were not blocked, by stage of the write path (first match on the stack), by leaf and inclusive frame.
# Usage: bench/trace-summary.py TRACE.speedscope.json
import json, sys, collections, re
d = json.load(open(sys.argv[1]))
frames = [f['name'] for f in d['shared']['frames']]
leaf = collections.Counter(); incl = collections.Counter(); total = 0
waits = re.compile(r'Wait|Sleep|LowLevelLifoSemaphore|SemaphoreSlim|WaitForSocketEvents|epoll|Monitor\.|ManualResetEvent|Thread\.Join|WaitHandle|SocketAsyncEngine\.EventLoop|ThreadPoolWorkQueue\.Dispatch$')
cats = collections.OrderedDict([
 ('zstd compress', r'Zstd\.Compress'),
 ('chunk ID (HMAC-SHA256)', r'ChunkId|HMACSHA256|HashData'),
 ('AES-GCM seal', r'Aead\.Seal|AesGcm'),
 ('CRC-32C', r'Crc32C(?!Stream\.Read)'),
 ('pack/file write (pwrite, fsync, fallocate)', r'Interop\+Sys\.(PWrite|Write|FSync|FAllocate)|Native\.fsync|Storage.*Put|FreshFile'),
 ('file read (syscall)', r'RandomAccess|FileStream.*Read|SafeFileHandle|Interop\+Sys\.P?Read'),
 ('pack build/copy', r'PackBuilder|PackFormat'),
 ('gear chunker', r'FastCdcChunker'),
 ('page checks', r'PageChecksum|RelationPages'),
 ('JIT/startup', r'JIT|Jit|TieredCompilation|AssemblyLoad|Loader'),
 ('GC', r'GC|gc_heap'),
])
catc = collections.Counter(); other = collections.Counter()
for p in d['profiles']:
    st = []; last = None; samples = []
    for e in p['events']:
        if last is not None and e['at'] > last and st:
            samples.append((list(st), e['at'] - last))
        last = e['at']
        if e['type'] == 'O': st.append(e['frame'])
        else:
            while st and st.pop() != e['frame']: pass
    for s, w in samples:
        names = [frames[i] for i in s]
        if not names: continue
        stack = ' | '.join(names)
        # only samples where the thread was running (not blocked)
        core = [n for n in names if n not in ('CPU_TIME', 'UNMANAGED_CODE_TIME', '?!?')]
        if 'SocketAsyncEngine.EventLoop' in stack or waits.search(core[-1]) or core[-1].endswith('WorkerThreadStart()') or core[-1].endswith('StartCallback()'):
            catc['(blocked/waiting)'] += w; continue
        total += w
        lf = core[-1] + (' [native]' if 'UNMANAGED_CODE_TIME' in names or '?!?' in names else ' [managed]')
        leaf[lf] += w
        for n in set(names): incl[n] += w
        for c, rx in cats.items():
            if re.search(rx, stack):
                catc[c] += w; break
        else:
            catc['other'] += w; other[lf] += w
print('running samples weight', round(total, 1), 'unit', d['profiles'][0].get('unit'))
print('\n== categories (first match on stack)')
for c, w in catc.most_common(): print(f'{w/total*100:6.1f}%  {c}' if c != '(blocked/waiting)' else f'  (waiting: {w:.0f})')
print('\n== other, by leaf')
for n, w in other.most_common(15): print(f'{w/total*100:6.1f}%  {n[:150]}')
print('\n== top leaf')
for n, w in leaf.most_common(25): print(f'{w/total*100:6.1f}%  {n[:150]}')
print('\n== top inclusive')
for n, w in incl.most_common(40): print(f'{w/total*100:6.1f}%  {n[:150]}')
