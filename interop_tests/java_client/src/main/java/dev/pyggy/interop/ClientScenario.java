package dev.pyggy.interop;

import java.io.FileReader;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * ClientScenario BOOTSTRAP TOPIC GROUP [CLIENT_PROPERTIES_FILE]: AdminClient creates TOPIC (3 partitions), a producer
 * with the default configuration (idempotent, acks=all) sends 60 keyed records with headers,
 * a consumer in GROUP reads them all and commits, then the AdminClient reads the group back.
 * Prints "RESULT key=value" lines (broker-independent values only) for the Python test.
 * The optional properties file adds settings to every client (e.g. security.protocol=SSL).
 */
public final class ClientScenario {
    static final int RECORDS = 60;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], group = args[2];
        Properties common = new Properties();
        common.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        if (args.length > 3) {
            try (Reader in = new FileReader(args[3], StandardCharsets.UTF_8)) {
                common.load(in);
            }
        }

        try (Admin admin = Admin.create(common)) {
            String created;
            try {
                admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get();
                created = "ok";
            } catch (ExecutionException e) {
                created = e.getCause().getClass().getSimpleName();
            }
            result("admin.create", created);
            try {
                admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get();
                result("admin.create_again", "ok");
            } catch (ExecutionException e) {
                result("admin.create_again", e.getCause() instanceof TopicExistsException
                        ? "TopicExistsException" : e.getCause().toString());
            }
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            result("admin.partitions", d.partitions().size());
            result("admin.cluster_nodes", admin.describeCluster().nodes().get().size());
            result("admin.topic_listed", admin.listTopics().names().get().contains(topic));
        }

        Properties pp = new Properties();
        pp.putAll(common);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        Map<Integer, List<Long>> offsets = new TreeMap<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            for (int i = 0; i < RECORDS; i++) {
                ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(topic, i % 3, 1_700_000_000_000L + i,
                        ("k" + i).getBytes(StandardCharsets.UTF_8), ("v" + i).getBytes(StandardCharsets.UTF_8));
                r.headers().add("i", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
                acks.add(producer.send(r));
            }
            producer.flush();
            for (Future<RecordMetadata> f : acks) {
                RecordMetadata m = f.get();
                offsets.computeIfAbsent(m.partition(), p -> new ArrayList<>()).add(m.offset());
            }
        }
        result("producer.offsets", offsets);

        Properties cp = new Properties();
        cp.putAll(common);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        int consumed = 0, intact = 0;
        Set<Integer> assigned = new TreeSet<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 60_000;
            while (consumed < RECORDS && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    consumed++;
                    Header h = r.headers().lastHeader("i");
                    String i = h == null ? "?" : new String(h.value(), StandardCharsets.UTF_8);
                    if (("k" + i).equals(new String(r.key(), StandardCharsets.UTF_8))
                            && ("v" + i).equals(new String(r.value(), StandardCharsets.UTF_8))
                            && r.timestamp() == 1_700_000_000_000L + Integer.parseInt(i)
                            && r.partition() == Integer.parseInt(i) % 3) {
                        intact++;
                    }
                }
            }
            for (TopicPartition tp : consumer.assignment()) assigned.add(tp.partition());
            consumer.commitSync();
            Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(
                    Set.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1), new TopicPartition(topic, 2)));
            result("consumer.committed", sumOffsets(committed.values()));
        }
        result("consumer.consumed", consumed);
        result("consumer.intact", intact);
        result("consumer.assigned", assigned);

        try (Admin admin = Admin.create(common)) {
            Map<TopicPartition, OffsetAndMetadata> groupOffsets =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            result("admin.group_offsets", sumOffsets(groupOffsets.values()));
            ConsumerGroupDescription g = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
            result("admin.group_state", g.groupState());
            result("admin.group_members", g.members().size());
            admin.deleteTopics(List.of(topic)).all().get();
            result("admin.delete", "ok");
        }
    }

    static long sumOffsets(Collection<OffsetAndMetadata> values) {
        long sum = 0;
        for (OffsetAndMetadata o : values) sum += o == null ? 0 : o.offset();
        return sum;
    }

    static void result(String key, Object value) {
        System.out.println("RESULT " + key + "=" + value);
        System.out.flush();
    }
}
