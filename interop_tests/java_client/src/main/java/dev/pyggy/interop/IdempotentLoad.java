package dev.pyggy.interop;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * IdempotentLoad BOOTSTRAP TOPIC: the Java client's idempotent acks=all producer as a writer of
 * pyggy's failure scenarios (pyggy/checker/workload.py). Each line read from stdin is a value
 * sent to TOPIC partition 0; each delivery is reported on stdout as "OK value offset" or
 * "ERR value exception", in the order the client reports them. At the end of stdin the
 * producer flushes and closes, then "DONE" is printed.
 */
public final class IdempotentLoad {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, "100");
        p.put(ProducerConfig.METADATA_MAX_AGE_CONFIG, "1000");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            String line;
            while ((line = in.readLine()) != null) {
                String value = line.strip();
                if (value.isEmpty()) {
                    continue;
                }
                producer.send(new ProducerRecord<>(topic, 0, null, value.getBytes(StandardCharsets.UTF_8)),
                        (md, e) -> {
                            synchronized (out) {
                                if (e == null) {
                                    out.println("OK " + value + " " + md.offset());
                                } else {
                                    out.println("ERR " + value + " " + e.getClass().getSimpleName()
                                            + ": " + String.valueOf(e.getMessage()).replace('\n', ' '));
                                }
                            }
                        });
            }
            producer.flush();
            producer.close(Duration.ofSeconds(30));
        }
        synchronized (out) {
            out.println("DONE");
        }
    }
}
