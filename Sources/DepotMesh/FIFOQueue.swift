/// A first-in, first-out queue over an array: taking the front moves an index, and the taken
/// part is dropped once it is most of the array, so both cost O(1) amortised and nothing
/// passes over the whole queue.
struct FIFOQueue<Element> {
    private var elements: [Element] = []
    private var start = 0

    var first: Element? { start < elements.count ? elements[start] : nil }

    mutating func append(_ element: Element) { elements.append(element) }

    mutating func removeFirst() {
        start += 1
        if start > 1024 && start * 2 > elements.count {
            elements.removeFirst(start)
            start = 0
        }
    }
}
