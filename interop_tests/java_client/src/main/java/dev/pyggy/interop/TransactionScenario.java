package dev.pyggy.interop;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * TransactionScenario BOOTSTRAP TOPIC GROUP TRANSACTIONAL_ID: consume-transform-produce with
 * the Java client's transactional producer. A group consumer reads 10 records of TOPIC-in; a
 * transaction sends 5 of them (upper-cased) to TOPIC-out with sendOffsetsToTransaction, flushes
 * and is aborted; a second sends all 10 with the offsets and commits. Then read_committed and
 * read_uncommitted readers of TOPIC-out, the group's committed offset, a second instance with
 * the same transactional id fencing the first, and the Admin's transaction views.
 * Prints "RESULT key=value" lines (broker-independent values only) for the Python test.
 */
public final class TransactionScenario {
    static final int RECORDS = 10;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], in = args[1] + "-in", out = args[1] + "-out", group = args[2];
        String tid = args[3];
        Properties common = new Properties();
        common.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(common)) {
            admin.createTopics(List.of(new NewTopic(in, 1, (short) 1), new NewTopic(out, 1, (short) 1)))
                    .all().get();
        }
        Properties pp = new Properties();
        pp.putAll(common);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        try (KafkaProducer<byte[], byte[]> plain = new KafkaProducer<>(pp)) {
            for (int i = 0; i < RECORDS; i++) {
                plain.send(new ProducerRecord<>(in, 0, null, ("r" + i).getBytes(StandardCharsets.UTF_8)));
            }
            plain.flush();
        }

        Properties cp = new Properties();
        cp.putAll(common);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        Properties tp = new Properties();
        tp.putAll(pp);
        tp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, tid);
        TopicPartition inTp = new TopicPartition(in, 0), outTp = new TopicPartition(out, 0);
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp);
             KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(tp)) {
            consumer.subscribe(List.of(in));
            List<byte[]> got = new ArrayList<>();
            long deadline = System.currentTimeMillis() + 60_000;
            while (got.size() < RECORDS && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) got.add(r.value());
            }
            result("consumer.consumed", got.size());
            producer.initTransactions();
            producer.beginTransaction();
            for (int i = 0; i < 5; i++) producer.send(new ProducerRecord<>(out, 0, null, upper(got.get(i))));
            producer.sendOffsetsToTransaction(Map.of(inTp, new OffsetAndMetadata(5)), consumer.groupMetadata());
            producer.flush();  // written, then aborted (unflushed records would just be dropped)
            producer.abortTransaction();
            result("txn.committed_after_abort", committed(consumer, inTp));
            producer.beginTransaction();
            for (byte[] v : got) producer.send(new ProducerRecord<>(out, 0, null, upper(v)));
            producer.sendOffsetsToTransaction(Map.of(inTp, new OffsetAndMetadata(RECORDS)), consumer.groupMetadata());
            producer.commitTransaction();
            result("txn.committed_after_commit", committed(consumer, inTp));

            producer.beginTransaction();
            producer.send(new ProducerRecord<>(out, 0, null, "zombie".getBytes(StandardCharsets.UTF_8))).get();
            try (KafkaProducer<byte[], byte[]> successor = new KafkaProducer<>(tp)) {
                successor.initTransactions();  // fences `producer`, aborting its transaction
                try {
                    producer.commitTransaction();
                    result("txn.zombie_commit", "ok");
                } catch (Exception e) {
                    result("txn.zombie_commit", e.getClass().getSimpleName());
                }
            }
        }
        result("out.read_committed", read(common, outTp, "read_committed"));
        result("out.read_uncommitted", read(common, outTp, "read_uncommitted"));

        try (Admin admin = Admin.create(common)) {
            TransactionDescription d = admin.describeTransactions(List.of(tid)).all().get().get(tid);
            result("admin.txn_state", d.state());
            result("admin.txn_epoch", d.producerEpoch());
            result("admin.txn_partitions", d.topicPartitions().size());
            boolean listed = false;
            for (TransactionListing l : admin.listTransactions().all().get()) {
                listed |= l.transactionalId().equals(tid);
            }
            result("admin.txn_listed", listed);
        }
    }

    static byte[] upper(byte[] v) {
        return new String(v, StandardCharsets.UTF_8).toUpperCase().getBytes(StandardCharsets.UTF_8);
    }

    static long committed(KafkaConsumer<byte[], byte[]> c, TopicPartition tp) {
        OffsetAndMetadata o = c.committed(Set.of(tp)).get(tp);
        return o == null ? -1 : o.offset();
    }

    /** The values of partition 0 from the start as "[A, B, ...]", and the end offset seen. */
    static String read(Properties common, TopicPartition tp, String isolation) {
        Properties cp = new Properties();
        cp.putAll(common);
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp)) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long end = c.endOffsets(List.of(tp)).get(tp);
            long deadline = System.currentTimeMillis() + 15_000;
            while (c.position(tp) < end && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(300))) {
                    values.add(new String(r.value(), StandardCharsets.UTF_8));
                }
            }
            return "end=" + end + " " + values;
        }
    }

    static void result(String key, Object value) {
        System.out.println("RESULT " + key + "=" + value);
        System.out.flush();
    }
}
