// Prints Apache Kafka's error table, one line per code: "<code> <NAME> <retriable>".
// Run by tests/kafka_wire/protocol/kafka_spec.py with the kafka-clients jar on the classpath.
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.protocol.Errors;

public class KafkaErrors {
    public static void main(String[] args) {
        for (Errors error : Errors.values()) {
            boolean retriable = error.exception() instanceof RetriableException;
            System.out.println(error.code() + " " + error.name() + " " + retriable);
        }
    }
}
