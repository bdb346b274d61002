// A JVM workload for tests/live/test_heap_live.py: Unsafe.allocateMemory's N buffers
// filled with JSON push messages, then freeMemory's all but every 16th, so the kept
// ones pin the arena heap and glibc keeps the freed chunks (NMT would show current low,
// peak high; RSS stays).
//
//   java UnsafeBurst.java N
//
// It prints one line with its own accounting in glibc chunk bytes, and sleeps until killed:
//   ptr=0x... live=BYTES freed=BYTES live_chunks=N freed_chunks=N
// Chunk bytes: allocateMemory rounds the request up to 8, os::malloc adds nothing
// without NMT, and glibc's chunk is request + 8 rounded up to 16, at least 32.
import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.util.Random;
import sun.misc.Unsafe;

public class UnsafeBurst {
    static long chunk(long request) {
        long r = (request + 7) & ~7L;
        return Math.max(32, (r + 8 + 15) & ~15L);
    }

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        Field f = Unsafe.class.getDeclaredField("theUnsafe");
        f.setAccessible(true);
        Unsafe u = (Unsafe) f.get(null);
        Random rnd = new Random(42);
        long[] addrs = new long[n];
        long[] sizes = new long[n];
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) {
            int size = 200 + rnd.nextInt(3000);
            sb.setLength(0);
            while (sb.length() < size) {
                sb.append("{\"uid\":").append(rnd.nextInt(100000)).append(",\"unread_count\":")
                  .append(rnd.nextInt(50)).append(",\"type\":\"push\",\"body\":\"hello\"}");
            }
            byte[] b = sb.substring(0, size).getBytes(StandardCharsets.US_ASCII);
            long p = u.allocateMemory(size);
            u.copyMemory(b, Unsafe.ARRAY_BYTE_BASE_OFFSET, null, p, size);
            addrs[i] = p;
            sizes[i] = size;
        }
        long live = 0, freed = 0, liveChunks = 0, freedChunks = 0, kept = 0;
        for (int i = 0; i < n; i++) {
            if (i % 16 == 15 || i == n - 1) {
                live += chunk(sizes[i]);
                liveChunks++;
                if (kept == 0) kept = addrs[i];
            } else {
                freed += chunk(sizes[i]);
                freedChunks++;
                u.freeMemory(addrs[i]);
            }
        }
        System.out.println("ptr=0x" + Long.toHexString(kept) + " live=" + live + " freed=" + freed
                + " live_chunks=" + liveChunks + " freed_chunks=" + freedChunks);
        System.out.flush();
        Thread.sleep(600_000);
    }
}
