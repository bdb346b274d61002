import java.util.ArrayList;
import java.util.List;
import java.util.zip.Deflater;

/**
 * Test workload for offheap's NMT tests: leaks a few zlib Deflaters (malloc'd
 * outside NMT) and one direct ByteBuffer (tracked by NMT), prints "ready",
 * then idles until its stdin closes. Run: java -XX:NativeMemoryTracking=detail NmtIdle.java N
 */
public class NmtIdle {
    public static void main(String[] args) throws Exception {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 20;
        List<Deflater> leaked = new ArrayList<>();
        byte[] json = "{\"type\":\"push\",\"uid\":12345,\"unread_count\":3,\"body\":\"hello\"}".getBytes("UTF-8");
        byte[] out = new byte[1 << 16];
        for (int i = 0; i < n; i++) {
            Deflater d = new Deflater(Deflater.BEST_COMPRESSION, true);
            d.setInput(json);
            d.deflate(out, 0, out.length, Deflater.SYNC_FLUSH);
            leaked.add(d);          // never end()ed: its zlib state stays malloc'd
        }
        java.nio.ByteBuffer direct = java.nio.ByteBuffer.allocateDirect(4 << 20);
        direct.put(0, (byte) 1);
        // Give the JVM time to finish installing its signal handlers and attach
        // listener support before anyone runs jcmd against it.
        Thread.sleep(300);
        System.out.println("ready " + ProcessHandle.current().pid() + " " + leaked.size());
        System.out.flush();
        while (System.in.read() != -1) {
            // idle until the test closes our stdin (or kills us)
        }
        System.out.println(direct.get(0));
    }
}
