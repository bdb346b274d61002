import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.zip.Deflater;

/**
 * A websocket push server in miniature, leaking its pushes into native memory, for
 * offheap's end-to-end tests (tests/live/test_jvm_e2e.py).
 *
 * Worker threads build JSON pushes of three types (unread_count, presence, message_new;
 * message counts 6:3:1, so the byte shares follow from their sizes) and put them where a
 * real server's bytes end up:
 *
 *   leak THREADS CONNS BYTES   each worker opens CONNS "connections": a raw Deflater used
 *       permessage-deflate style (setInput(push), deflate(SYNC_FLUSH), context kept between
 *       messages) that is kept referenced and never end()ed. zlib malloc()s its state
 *       (~262 KiB, window included) outside NMT and copies every plaintext byte into its
 *       window. BYTES (< 60 KiB) stays below the point where zlib slides the window, so
 *       every byte fed is in native memory exactly once.
 *   burst THREADS MIB BLOCK    each worker Unsafe.allocateMemory()s MIB MiB in BLOCK-byte
 *       blocks (below the mmap threshold: they land in its glibc arena), fills them with
 *       pushes, waits until every worker has done so (the peak), then freeMemory()s 15 of
 *       every 16. The live 16th blocks pin the heap, so
 *       glibc keeps the freed chunks resident; NMT (which tracks Unsafe memory as "Other")
 *       shows current far below peak.
 *
 * Pushes are newline-delimited (NDJSON, as a gateway relaying a backend's event stream
 * sends them), so each push is one text run in memory. When all is in place the program
 * prints one line, "READY {json}", with the payload bytes of each type it put in native
 * memory (the newlines not counted), then idles until killed, or exits on its own after
 * TTL seconds (default 600; "--ttl N" as last two arguments).
 *
 * Run: java -Xmx256m -XX:NativeMemoryTracking=summary PushServer.java leak 4 200 49152
 */
public class PushServer {
    static final String[] TYPES = {"unread_count", "presence", "message_new"};
    static final int[] WEIGHTS = {6, 3, 1};
    static final String[] STATUS = {"online", "away", "offline", "busy"};
    static final String[] DEVICE = {"ios", "android", "web", "desktop"};
    static final String[] WORDS = {"hello", "see", "you", "at", "the", "standup", "tomorrow",
            "thanks", "for", "the", "review", "lunch", "is", "ready", "ship", "it", "now"};

    /** One push of type t, with ASCII-only text so it is one printable run in memory. */
    static String push(int t, SplittableRandom rnd, long seq) {
        long uid = 100000 + rnd.nextInt(900000);
        long ts = 1732600000000L + seq * 37;
        switch (t) {
            case 0:
                return "{\"event\":\"unread_count\",\"uid\":" + uid + ",\"count\":" + rnd.nextInt(500)
                        + ",\"ts\":" + ts + "}";
            case 1:
                return "{\"event\":\"presence\",\"uid\":" + uid + ",\"status\":\""
                        + STATUS[rnd.nextInt(STATUS.length)] + "\",\"device\":\""
                        + DEVICE[rnd.nextInt(DEVICE.length)] + "\",\"last_seen\":" + ts + "}";
            default:
                StringBuilder text = new StringBuilder();
                int words = 6 + rnd.nextInt(20);
                for (int i = 0; i < words; i++) {
                    if (i > 0) text.append(' ');
                    text.append(WORDS[rnd.nextInt(WORDS.length)]);
                }
                return "{\"event\":\"message_new\",\"conv\":" + (1000 + rnd.nextInt(9000)) + ",\"from\":"
                        + uid + ",\"msg_id\":" + seq + ",\"text\":\"" + text + "\",\"ts\":" + ts + "}";
        }
    }

    static int pickType(SplittableRandom rnd) {
        int total = 0;
        for (int w : WEIGHTS) total += w;
        int r = rnd.nextInt(total);
        for (int t = 0; t < WEIGHTS.length; t++) {
            r -= WEIGHTS[t];
            if (r < 0) return t;
        }
        return WEIGHTS.length - 1;
    }

    /** What one worker put in native memory. */
    static final class Tally {
        final long[] live = new long[TYPES.length];
        final long[] freed = new long[TYPES.length];
        final long[] pushes = new long[TYPES.length];
        long allocated, freedBytes, liveBytes, objects;
    }

    // Referenced from a static so nothing is ever collected (and no Cleaner runs end()).
    static final List<Object> KEEP = new ArrayList<>();
    static CountDownLatch ALLOCATED = new CountDownLatch(0);

    static void leakWorker(int id, int conns, int bytesPerConn, Tally tally, List<Deflater> keep) {
        SplittableRandom rnd = new SplittableRandom(0x5eed0000L + id);
        byte[] out = new byte[1 << 17];
        long seq = (long) id << 32;
        for (int c = 0; c < conns; c++) {
            // nowrap: raw deflate, as permessage-deflate uses.
            Deflater d = new Deflater(Deflater.DEFAULT_COMPRESSION, true);
            int fed = 0;
            while (true) {
                int t = pickType(rnd);
                byte[] msg = (push(t, rnd, seq++) + "\n").getBytes(StandardCharsets.US_ASCII);
                if (fed + msg.length > bytesPerConn) break;
                d.setInput(msg);
                while (!d.needsInput()) {
                    d.deflate(out, 0, out.length, Deflater.SYNC_FLUSH);
                }
                fed += msg.length;
                tally.live[t] += msg.length - 1;
                tally.pushes[t]++;
            }
            keep.add(d);                    // never end()ed: its zlib state stays malloc'd
            tally.objects++;
            tally.allocated += fed;
        }
        tally.liveBytes = tally.allocated;
    }

    static sun.misc.Unsafe unsafe() throws Exception {
        Field f = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
        f.setAccessible(true);
        return (sun.misc.Unsafe) f.get(null);
    }

    static void burstWorker(int id, long bytes, int block, Tally tally, List<Long> liveAddrs)
            throws Exception {
        sun.misc.Unsafe u = unsafe();
        SplittableRandom rnd = new SplittableRandom(0xb0057000L + id);
        long seq = (long) id << 32;
        int blocks = (int) (bytes / block);
        blocks -= blocks % 16;              // the last block is live: it pins the heap top
        long[] addr = new long[blocks];
        long[][] perBlock = new long[blocks][TYPES.length];
        for (int b = 0; b < blocks; b++) {
            long a = u.allocateMemory(block);
            addr[b] = a;
            int off = 0;
            while (true) {
                int t = pickType(rnd);
                byte[] msg = (push(t, rnd, seq++) + "\n").getBytes(StandardCharsets.US_ASCII);
                if (off + msg.length > block) break;
                for (int i = 0; i < msg.length; i++) u.putByte(a + off + i, msg[i]);
                off += msg.length;
                perBlock[b][t] += msg.length - 1;
                tally.pushes[t]++;
            }
            u.setMemory(a + off, block - off, (byte) 0);
            tally.allocated += block;
        }
        // The burst peaks when every worker holds all its blocks (NMT's peak= records it);
        // then most are released.
        ALLOCATED.countDown();
        ALLOCATED.await();
        for (int b = 0; b < blocks; b++) {
            if (b % 16 == 15) {
                liveAddrs.add(addr[b]);
                tally.liveBytes += block;
                tally.objects++;
                for (int t = 0; t < TYPES.length; t++) tally.live[t] += perBlock[b][t];
            } else {
                u.freeMemory(addr[b]);
                tally.freedBytes += block;
                for (int t = 0; t < TYPES.length; t++) tally.freed[t] += perBlock[b][t];
            }
        }
    }

    static String typesJson(long[] v) {
        StringBuilder sb = new StringBuilder("{");
        for (int t = 0; t < TYPES.length; t++) {
            if (t > 0) sb.append(',');
            sb.append('"').append(TYPES[t]).append("\":").append(v[t]);
        }
        return sb.append('}').toString();
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: PushServer leak THREADS CONNS BYTES_PER_CONN [--ttl S]\n"
                    + "       PushServer burst THREADS MIB_PER_THREAD BLOCK [--ttl S]");
            System.exit(2);
        }
        String mode = args[0];
        int threads = Integer.parseInt(args[1]);
        long ttl = 600;
        if (args.length >= 6 && args[4].equals("--ttl")) ttl = Long.parseLong(args[5]);
        Tally[] tallies = new Tally[threads];
        ALLOCATED = new CountDownLatch(threads);
        CountDownLatch done = new CountDownLatch(threads);
        CountDownLatch forever = new CountDownLatch(1);
        Throwable[] failure = new Throwable[1];
        for (int i = 0; i < threads; i++) {
            final int id = i;
            tallies[i] = new Tally();
            Thread w = new Thread(() -> {
                try {
                    if (mode.equals("leak")) {
                        List<Deflater> keep = new ArrayList<>();
                        leakWorker(id, Integer.parseInt(args[2]), Integer.parseInt(args[3]), tallies[id], keep);
                        synchronized (KEEP) { KEEP.add(keep); }
                    } else if (mode.equals("burst")) {
                        List<Long> keep = new ArrayList<>();
                        burstWorker(id, Long.parseLong(args[2]) << 20, Integer.parseInt(args[3]), tallies[id], keep);
                        synchronized (KEEP) { KEEP.add(keep); }
                    } else {
                        throw new IllegalArgumentException("unknown mode " + mode);
                    }
                } catch (Throwable e) {
                    synchronized (failure) { failure[0] = e; }
                    while (ALLOCATED.getCount() > 0) ALLOCATED.countDown();   // let the others go on
                } finally {
                    done.countDown();
                }
                // Stay alive: a glibc arena stays attached to its thread, so other threads
                // do not take it over and reuse (overwrite) the freed chunks.
                try { forever.await(); } catch (InterruptedException ignored) { }
            }, "push-worker-" + i);
            w.setDaemon(true);
            w.start();
        }
        done.await();
        if (failure[0] != null) {
            failure[0].printStackTrace();
            System.exit(1);
        }
        Tally sum = new Tally();
        for (Tally t : tallies) {
            for (int k = 0; k < TYPES.length; k++) {
                sum.live[k] += t.live[k];
                sum.freed[k] += t.freed[k];
                sum.pushes[k] += t.pushes[k];
            }
            sum.allocated += t.allocated;
            sum.freedBytes += t.freedBytes;
            sum.liveBytes += t.liveBytes;
            sum.objects += t.objects;
        }
        // jcmd attaching before the JVM has its signal handlers in place kills it (FACTS.md);
        // by now (threads done) it has, but give the attach machinery a moment anyway.
        Thread.sleep(200);
        System.out.println("READY {\"mode\":\"" + mode + "\",\"pid\":" + ProcessHandle.current().pid()
                + ",\"threads\":" + threads + ",\"objects\":" + sum.objects
                + ",\"allocated\":" + sum.allocated + ",\"live_bytes\":" + sum.liveBytes
                + ",\"freed_bytes\":" + sum.freedBytes
                + ",\"live\":" + typesJson(sum.live) + ",\"freed\":" + typesJson(sum.freed)
                + ",\"pushes\":" + typesJson(sum.pushes) + "}");
        System.out.flush();
        Thread.sleep(ttl * 1000);
        System.exit(0);
    }
}
