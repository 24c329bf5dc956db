package dev.pyggy.interop;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * SecurityCells BOOTSTRAP MECHANISM USER PASSWORD TAG TOPIC...: logs in with SASL (PLAIN or
 * SCRAM-SHA-256/512) and tries, on each TOPIC, describe, produce, consume (subscribe), commit,
 * alter (retention.ms) and delete records; then lists topics, creates "secret.made-TAG" (or
 * "secret.try-TAG") and deletes it (or the first TOPIC). Prints "RESULT op[:topic]=code": 0
 * when allowed, else the Kafka error code of the exception the client raised.
 */
public final class SecurityCells {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], mechanism = args[1], user = args[2], password = args[3];
        String tag = args[4];
        List<String> topics = List.of(args).subList(5, args.length);
        String module = mechanism.equals("PLAIN")
                ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                : "org.apache.kafka.common.security.scram.ScramLoginModule";
        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);
        common.put("security.protocol", "SASL_PLAINTEXT");
        common.put("sasl.mechanism", mechanism);
        common.put("sasl.jaas.config", module + " required username=\"" + user
                + "\" password=\"" + password + "\";");

        try (Admin admin = Admin.create(common)) {
            Set<String> listed = new TreeSet<>(admin.listTopics().names().get(30, TimeUnit.SECONDS));
            result("list", String.join(",", listed));
            for (String t : topics) {
                TopicPartition tp = new TopicPartition(t, 0);
                cell("describe:" + t, () -> admin.describeTopics(List.of(t)).allTopicNames()
                        .get(30, TimeUnit.SECONDS));
                cell("produce:" + t, () -> produce(common, t));
                cell("consume:" + t, () -> consume(common, t, tag + "-" + t + "-read"));
                cell("commit:" + t, () -> commit(common, tp, tag + "-" + t + "-commit"));
                ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, t);
                AlterConfigOp op = new AlterConfigOp(new ConfigEntry("retention.ms", "604800000"),
                        AlterConfigOp.OpType.SET);
                cell("alter:" + t, () -> admin.incrementalAlterConfigs(Map.of(r, List.of(op)))
                        .all().get(30, TimeUnit.SECONDS));
                cell("delete_records:" + t, () -> admin.deleteRecords(
                        Map.of(tp, RecordsToDelete.beforeOffset(0))).all()
                        .get(30, TimeUnit.SECONDS));
            }
            boolean allowed = cell("create", () -> admin.createTopics(List.of(new NewTopic(
                    "secret.made-" + tag, 1, (short) 1))).all().get(30, TimeUnit.SECONDS)) == 0;
            String doomed = allowed ? "secret.made-" + tag : topics.get(0);
            cell("delete", () -> admin.deleteTopics(List.of(doomed)).all()
                    .get(30, TimeUnit.SECONDS));
        }
    }

    static Object produce(Properties common, String topic) throws Exception {
        Properties p = new Properties();
        p.putAll(common);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            return producer.send(new ProducerRecord<>(topic, "from java".getBytes()))
                    .get(30, TimeUnit.SECONDS);
        }
    }

    static KafkaConsumer<byte[], byte[]> consumer(Properties common, String group) {
        Properties c = new Properties();
        c.putAll(common);
        c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG,
                ByteArrayDeserializer.class.getName());
        return new KafkaConsumer<>(c);
    }

    static Object consume(Properties common, String topic, String group) {
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(common, group)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 30000;
            while (System.currentTimeMillis() < deadline) {
                ConsumerRecords<byte[], byte[]> got = consumer.poll(Duration.ofMillis(500));
                if (!got.isEmpty()) {
                    return got.count();
                }
            }
            throw new IllegalStateException("nothing consumed");
        }
    }

    static Object commit(Properties common, TopicPartition tp, String group) {
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(common, group)) {
            consumer.commitSync(Map.of(tp, new OffsetAndMetadata(1)), Duration.ofSeconds(30));
            return null;
        }
    }

    /** Run one cell: 0 when it succeeds, else the Kafka error code of what it threw. */
    static int cell(String key, Callable<Object> action) {
        int code;
        try {
            action.call();
            code = 0;
        } catch (Exception e) {
            Throwable cause = e instanceof ExecutionException ? e.getCause() : e;
            Errors error = Errors.forException(cause);
            code = error == Errors.UNKNOWN_SERVER_ERROR ? -1 : error.code();
            if (code == -1) {
                System.err.println(key + ": " + cause);
            }
        }
        result(key, Integer.toString(code));
        return code;
    }

    static void result(String key, String value) {
        System.out.println("RESULT " + key + "=" + value);
        System.out.flush();
    }
}
